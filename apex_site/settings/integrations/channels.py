"""The Channels layer: Redis when ``REDIS_URL`` is set, else in-memory (one process)."""

from __future__ import annotations

from .redis import REDIS_URL

__all__ = ["APEX_CHANNELS_SOCKET_TIMEOUT_S", "CHANNEL_LAYERS"]

# Longer than channels_redis's blocking pop (BZPOPMIN, 5 s): redis-py 8 reads
# with a 5 s socket timeout by default, so an idle socket's receive loop could
# time out just before Redis answered and drop the socket (redis/redis-py#4091;
# seen as dropped feed sockets in benchmarks/events_bench.py). A dead Redis
# still surfaces after this long.
APEX_CHANNELS_SOCKET_TIMEOUT_S = 15

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": APEX_CHANNELS_SOCKET_TIMEOUT_S,
                    }
                ],
                "prefix": "apex:channels",
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
