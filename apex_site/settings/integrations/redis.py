"""The one Redis URL: Celery broker and results, cache and channel layer.

Unset means the embedded mode: each of those falls back to an in-process one.
"""

from __future__ import annotations

from ..environment import env_redis_url

__all__ = ["REDIS_URL"]

REDIS_URL = env_redis_url("REDIS_URL")
