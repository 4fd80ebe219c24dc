"""One object per process and ``REDIS_URL``.

The meter, the event stream and the impression buffer each come in a Redis
kind (production) and an in-process kind (the embedded mode). ``PerRedisUrl``
holds the one instance this process uses for the current ``REDIS_URL``,
built on first use under a lock; ``clear()`` forgets them (tests that change
``REDIS_URL``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from django.conf import settings

T = TypeVar("T")


class PerRedisUrl(Generic[T]):
    def __init__(
        self, redis_kind: Callable[[str], T], memory_kind: Callable[[], T]
    ) -> None:
        self._redis_kind = redis_kind
        self._memory_kind = memory_kind
        self._instances: dict[str, T] = {}
        self._lock = threading.Lock()

    def get(self) -> T:
        url = settings.REDIS_URL or ""
        found = self._instances.get(url)
        if found is None:
            with self._lock:
                found = self._instances.get(url)
                if found is None:
                    found = self._redis_kind(url) if url else self._memory_kind()
                    self._instances[url] = found
        return found

    def clear(self) -> None:
        with self._lock:
            self._instances.clear()
