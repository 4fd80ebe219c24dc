"""A per-process cache of the serving engine's answers.

The engine is a pure function of (the loaded bundle, the request): the same
artifact version and weights, the same history and the same parameters give
the same list. So its answer can be cached under the request itself - the
whole history is part of the key, which makes a new rating (a longer
history) a new key instead of something to invalidate - and the cache is
emptied whenever the runtime swaps in another bundle (a reload, new ensemble
weights). Only engine answers are cached, never a fallback, so a recovering
engine is asked again on the next request.

Size: ``APEX_RESULT_CACHE_SIZE`` entries per process (LRU; 0 turns it off).
An entry is a few hundred bytes to a few KB (ids, scores, reason strings).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class ResultCache:
    """A thread-safe LRU map bound to one bundle object at a time."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._bundle: object | None = None
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, bundle: object, key: Hashable) -> Any | None:
        if self.size <= 0:
            return None
        with self._lock:
            if bundle is not self._bundle:
                self.misses += 1
                return None
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, bundle: object, key: Hashable, value: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            if bundle is not self._bundle:  # another bundle: start over
                self._entries.clear()
                self._bundle = bundle
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bundle = None

    def stats(self) -> dict[str, int]:
        return {
            "size": self.size,
            "entries": len(self._entries),
            "hits": self.hits,
            "misses": self.misses,
        }


_cache: ResultCache | None = None


def get_result_cache() -> ResultCache:
    """The process-wide cache, sized by ``settings.APEX_RESULT_CACHE_SIZE``."""
    global _cache
    if _cache is None:
        from django.conf import settings

        _cache = ResultCache(settings.APEX_RESULT_CACHE_SIZE)
    return _cache


def set_result_cache(cache: ResultCache | None) -> None:
    """Replace the process-wide cache (tests; ``None``: rebuild from settings)."""
    global _cache
    _cache = cache
