"""The impression buffer between the request path and the impression log.

Serving appends one JSON slate per served list (one ``RPUSH``, a fraction of
a millisecond); ``experiments.flush_impressions`` moves them to PostgreSQL
in batches. Two implementations of one small interface, as the event stream
(``learning/stream.py``):

- :class:`RedisImpressionBuffer` (production, tests): the list
  ``apex:impressions``. A flush holds the lock ``apex:impressions:flush``,
  reads a batch with ``LRANGE``, inserts it, and only then ``LTRIM``s it off:
  a flush that dies in between leaves the batch for the next one (at least
  once), and the unique ``request_id`` makes the second insert a no-op.
- :class:`InProcessImpressionBuffer` (the embedded mode: no Redis): the same
  in process memory.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol

from apex_site.per_process import PerRedisUrl

LIST = "apex:impressions"
LOCK = "apex:impressions:flush"
MAX_LENGTH = 1_000_000  # beyond this, slates are dropped (logged), not queued


class ImpressionBuffer(Protocol):
    def push(self, payload: str) -> int:
        """Append one slate; the buffer's length after it."""
        ...

    def peek(self, count: int) -> list[str]: ...

    def trim(self, count: int) -> None:
        """Drop the ``count`` oldest slates (after they were written)."""
        ...

    def length(self) -> int: ...

    def lock(self, timeout_s: int) -> bool:
        """Take the flush lock (``False``: another flush holds it)."""
        ...

    def unlock(self) -> None: ...


class RedisImpressionBuffer:
    def __init__(self, url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(
            url, socket_timeout=1, socket_connect_timeout=1, health_check_interval=30
        )
        self._token: bytes | None = None

    def push(self, payload: str) -> int:
        return int(self.redis.rpush(LIST, payload))

    def peek(self, count: int) -> list[str]:
        return [v.decode() for v in self.redis.lrange(LIST, 0, count - 1)]

    def trim(self, count: int) -> None:
        self.redis.ltrim(LIST, count, -1)

    def length(self) -> int:
        return int(self.redis.llen(LIST))

    def lock(self, timeout_s: int) -> bool:
        import secrets

        token = secrets.token_bytes(8)
        if self.redis.set(LOCK, token, nx=True, ex=timeout_s):
            self._token = token
            return True
        return False

    def unlock(self) -> None:
        # delete only our own lock (it may have expired and been re-taken)
        script = (
            "if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('del', KEYS[1]) else return 0 end"
        )
        if self._token is not None:
            self.redis.eval(script, 1, LOCK, self._token)
            self._token = None


class InProcessImpressionBuffer:
    def __init__(self) -> None:
        self._items: deque[str] = deque()
        self._lock = threading.Lock()
        self._flush = threading.Lock()

    def push(self, payload: str) -> int:
        with self._lock:
            self._items.append(payload)
            return len(self._items)

    def peek(self, count: int) -> list[str]:
        with self._lock:
            return [self._items[i] for i in range(min(count, len(self._items)))]

    def trim(self, count: int) -> None:
        with self._lock:
            for _ in range(min(count, len(self._items))):
                self._items.popleft()

    def length(self) -> int:
        return len(self._items)

    def lock(self, timeout_s: int) -> bool:
        return self._flush.acquire(blocking=False)

    def unlock(self) -> None:
        if self._flush.locked():
            self._flush.release()


_buffers: PerRedisUrl[ImpressionBuffer] = PerRedisUrl(
    RedisImpressionBuffer, InProcessImpressionBuffer
)


def get_impression_buffer() -> ImpressionBuffer:
    """This process's buffer: Redis when ``REDIS_URL`` is set, else in-process."""
    return _buffers.get()


def reset_impression_buffers() -> None:
    _buffers.clear()
