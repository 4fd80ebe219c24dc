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
"""

from __future__ import annotations

import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

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
