"""Django's cache: shared Redis when ``REDIS_URL`` is set, else per-process memory."""

from __future__ import annotations

from .redis import REDIS_URL

__all__ = ["CACHES"]

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "apex_site.cache.SharedRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "apex",
            # fail fast when Redis is away: the backend then reads as a miss
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
