// The billing page hears of a plan change at once: the per-user socket pushes
// "billing.update" after the webhook's commit and the plan panel reloads (the
// panel also polls every 5 s, for when the socket is down).
(function () {
  "use strict";
  if (!("WebSocket" in window)) return;
  var retry = 1000;
  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + "/ws/feed/");
    var keepAlive = null;
    socket.onopen = function () {
      retry = 1000;
      document.body.dataset.liveState = "open";
      keepAlive = setInterval(function () {
        socket.send(JSON.stringify({type: "ping"}));
      }, 60000);
    };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.type === "billing.update" && window.htmx) {
        window.htmx.trigger(document.body, "apex:billing");
      }
    };
    socket.onclose = function () {
      clearInterval(keepAlive);
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }
  connect();
})();
