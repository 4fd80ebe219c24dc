"""Channel-layer group sends from synchronous code (Celery workers, WSGI).

``async_to_sync(layer.group_send)`` outside an event loop starts a new loop
for every call, and channels_redis keeps its Redis connections per loop: so
every send built a connection pool, connected, identified itself (redis-py
looks its own version up in the package metadata) and closed again. In the
feed-refresh worker that was about a fifth of its CPU (issue 13's profile).
Here one event loop per process, on a daemon thread, makes every send: the
layer's connections live as long as the process.

Layers that are not Redis (the in-memory layer of the embedded mode) keep
``async_to_sync``: their queues belong to the server's own loop, which
``async_to_sync`` finds when it is called from a request's thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

SEND_TIMEOUT_S = 10.0

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None


def _sending_loop() -> asyncio.AbstractEventLoop:
    """This process's sending loop (a new one after a fork)."""
    global _loop, _loop_pid
    with _lock:
        if _loop is None or _loop_pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name="channel-layer-sends", daemon=True
            ).start()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


def _keeps_connections_per_loop(layer: Any) -> bool:
    try:
        from channels_redis.core import RedisChannelLayer
        from channels_redis.pubsub import RedisPubSubChannelLayer
    except ImportError:  # pragma: no cover - channels_redis is a requirement
        return False
    return isinstance(layer, RedisChannelLayer | RedisPubSubChannelLayer)


def group_send(group: str, message: dict[str, Any]) -> None:
    """Send ``message`` to ``group``; raises what the layer raises. A send
    that finds its kept connection closed (Redis restarted since) is tried
    once more, on a new one."""
    layer = get_channel_layer()
    if layer is None:
        return
    if not _keeps_connections_per_loop(layer):
        async_to_sync(layer.group_send)(group, message)
        return
    from redis.exceptions import ConnectionError as RedisConnectionError

    for attempt in range(2):
        future = asyncio.run_coroutine_threadsafe(
            layer.group_send(group, message), _sending_loop()
        )
        try:
            future.result(timeout=SEND_TIMEOUT_S)
            return
        except RedisConnectionError:
            if attempt:
                raise
