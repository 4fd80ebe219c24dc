"""Group sends from synchronous code reuse one loop (and its Redis
connections) per process, and still reach the group's channels."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer

from apex_site import channel_sends

pytestmark = pytest.mark.integration


def test_sync_sends_reach_the_group_on_one_loop_and_one_connection(settings):
    assert "RedisChannelLayer" in settings.CHANNEL_LAYERS["default"]["BACKEND"]
    layer = get_channel_layer()
    seen: list[tuple[object, object]] = []

    def send(n: int) -> None:  # synchronous code, as in a worker
        channel_sends.group_send("apex.test.sends", {"type": "probe", "n": n})
        loop = channel_sends._sending_loop()
        seen.append((loop, layer._layers[loop]))  # channels_redis: per loop

    async def scenario() -> list[int]:
        channel = await layer.new_channel()
        await layer.group_add("apex.test.sends", channel)
        for n in range(3):
            await sync_to_async(send, thread_sensitive=False)(n)
        return [(await layer.receive(channel))["n"] for _ in range(3)]

    assert async_to_sync(scenario)() == [0, 1, 2]
    assert len(set(seen)) == 1  # one loop, one set of connections, every send


def test_a_send_after_redis_restarted_goes_through(monkeypatch, tmp_path):
    """The kept connection is dead after a Redis restart: the send is tried
    once more on a new one instead of losing the push."""
    from channels_redis.core import RedisChannelLayer

    from scripts.servers import free_port, redis_start, redis_stop

    port = free_port()
    url = redis_start(tmp_path, port=port)
    layer = RedisChannelLayer(hosts=[url])
    monkeypatch.setattr(channel_sends, "get_channel_layer", lambda: layer)
    try:
        channel_sends.group_send("apex.test.restart", {"type": "probe"})
        redis_stop(tmp_path)
        redis_start(tmp_path, port=port)
        channel_sends.group_send("apex.test.restart", {"type": "probe"})
    finally:
        redis_stop(tmp_path)
