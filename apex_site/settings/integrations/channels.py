"""The Channels layer: Redis when ``REDIS_URL`` is set, else in-memory (one process)."""

from __future__ import annotations

from .redis import REDIS_URL

__all__ = ["CHANNEL_LAYERS"]

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "apex:channels"},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
