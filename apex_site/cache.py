"""The Redis cache backend with one client (and connection pool) per process.

Django keeps cache backends per async context, so under ASGI every request
builds a new ``RedisCache`` and with it a new ``RedisCacheClient``, a new
connection pool and a new TCP connection to Redis - for every throttle check
(measured ~1 ms of CPU per request, plus a connection Redis has to accept).
This backend shares the client between all backend instances of a process
with the same servers and options; redis-py's pools are thread-safe and reset
themselves after a fork, so uvicorn / Celery worker processes each get their
own.

Django's client also builds a new ``redis.Redis`` object around the pool on
every cache call (each one filling its ~170 response callbacks: ~0.2 ms of
CPU a call, two calls per API request); ``SharedClientRedisCacheClient``
builds one per pool and keeps it. A ``redis.Redis`` is thread-safe: every
command takes a connection from the pool.

A cache is a cache: when Redis cannot be reached, ``SharedRedisCache`` turns
its reads into misses and its writes into no-ops (one WARNING per 10 s per
process) instead of raising, so a Redis outage costs the request path its
shortcuts (API-key rows, histories, throttle windows), not a 500. What must
not be silent uses Redis itself (the meter, the event stream, the serving
generation counter's ``incr``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_warned_at = 0.0


def _unreachable(operation: str, exc: BaseException) -> None:
    global _warned_at
    now = time.monotonic()
    if now - _warned_at > 10:
        _warned_at = now
        logger.warning(
            "cache unreachable; %s skipped (a miss)",
            operation,
            extra={"error": str(exc)},
        )


_clients: dict[tuple[str, ...], RedisCacheClient] = {}
_lock = threading.Lock()


class SharedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._redis_clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._redis_clients.get(id(pool))
        if client is None:
            client = self._redis_clients.setdefault(
                id(pool), self._client(connection_pool=pool)
            )
        return client


class SharedRedisCache(RedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient

    def get(self, key, default=None, version=None) -> Any:
        try:
            return super().get(key, default, version)
        except _UNREACHABLE as exc:
            _unreachable("get", exc)
            return default

    def get_many(self, keys, version=None) -> dict:
        try:
            return super().get_many(keys, version)
        except _UNREACHABLE as exc:
            _unreachable("get_many", exc)
            return {}

    def has_key(self, key, version=None) -> bool:
        try:
            return super().has_key(key, version)
        except _UNREACHABLE as exc:
            _unreachable("has_key", exc)
            return False

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        try:
            return super().add(key, value, timeout, version)
        except _UNREACHABLE as exc:
            _unreachable("add", exc)
            return False

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> None:
        try:
            super().set(key, value, timeout, version)
        except _UNREACHABLE as exc:
            _unreachable("set", exc)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None) -> list:
        try:
            return super().set_many(data, timeout, version)
        except _UNREACHABLE as exc:
            _unreachable("set_many", exc)
            return list(data)

    def delete(self, key, version=None) -> bool:
        try:
            return super().delete(key, version)
        except _UNREACHABLE as exc:
            _unreachable("delete", exc)
            return False

    def delete_many(self, keys, version=None) -> None:
        try:
            super().delete_many(keys, version)
        except _UNREACHABLE as exc:
            _unreachable("delete_many", exc)

    @property  # type: ignore[override]
    def _cache(self) -> RedisCacheClient:
        key = (*self._servers, repr(sorted(self._options.items())))
        client = _clients.get(key)
        if client is None:
            with _lock:
                client = _clients.get(key)
                if client is None:
                    client = self._class(self._servers, **self._options)
                    _clients[key] = client
        return client
