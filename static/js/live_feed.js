// The live feed: the signed-in home page listens on /ws/feed/ and redraws its
// "For you" row when the server pushes a fresh feed (after a rating or click in
// any tab), with a short note of what caused it. Reconnects with back-off.
(function () {
  "use strict";
  var feed = document.querySelector('[data-testid="feed"][data-live="true"]');
  if (!feed || !("WebSocket" in window)) return;
  var note = document.querySelector('[data-testid="live-note"]');
  var retry = 1000;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text) node.textContent = text;
    return node;
  }

  function card(item) {
    var li = el("li", "movie-card");
    li.dataset.movieId = item.id;
    var a = el("a");
    a.href = item.url;
    var img = el("img");
    img.src = item.poster_url; img.alt = ""; img.loading = "lazy";
    img.width = 150; img.height = 225;
    a.appendChild(img);
    a.appendChild(el("p", "movie-title", item.title));
    var meta = (item.year || "") + (item.reason ? " · " + item.reason : "");
    a.appendChild(el("p", "meta", meta));
    li.appendChild(a);
    return li;
  }

  function render(payload) {
    var row = feed.querySelector('[data-row="for_you"]');
    if (!row) {
      row = el("section", "feed-row");
      row.dataset.row = "for_you";
      row.setAttribute("aria-labelledby", "row-for_you");
      var h2 = el("h2", null, "For you");
      h2.id = "row-for_you";
      row.appendChild(h2);
      feed.insertBefore(row, feed.firstChild);
    }
    var grid = row.querySelector(".movie-grid");
    if (!grid) { grid = el("ul", "movie-grid"); row.appendChild(grid); }
    grid.replaceChildren.apply(grid, payload.items.map(card));
    row.dataset.fallback = payload.meta.fallback ? "true" : "false";
    row.classList.remove("updated");
    void row.offsetWidth; // restart the highlight animation
    row.classList.add("updated");
    if (note) {
      note.textContent = payload.cause ? payload.cause.note : "Your feed was updated";
      note.hidden = false;
    }
    feed.dataset.updates = String(Number(feed.dataset.updates || 0) + 1);
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + "/ws/feed/");
    var keepAlive = null;
    socket.onopen = function () {
      retry = 1000;
      feed.dataset.liveState = "open";
      // the server counts open tabs, and refreshes feeds only where one is
      keepAlive = setInterval(function () {
        socket.send(JSON.stringify({type: "ping"}));
      }, 60000);
    };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.type === "feed.update") {
        render(message.payload);
        // drawn: the server logs this list as an impression now
        if (message.payload.request_id) {
          socket.send(JSON.stringify({type: "shown", request_id: message.payload.request_id}));
        }
      }
    };
    socket.onclose = function () {
      clearInterval(keepAlive);
      feed.dataset.liveState = "closed";
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }
  connect();
})();
