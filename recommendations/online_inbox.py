"""Applied events waiting for the online KAN (``recommendations/online.py``).

The coordinator announces every micro-batch it applies; at 200 events/s
that is dozens of batches a second, and a Celery task per batch cost more
(publish, consume, dispatch) than the learning it carried (issue 13's
profile). So a batch's event ids are appended here (one ``RPUSH``) and one
``recommendations.online_learn`` task is kicked unless one is waiting
(``services.online_learn_submit``); the task takes everything waiting
(``LPOP`` with a count) and learns from it in one pass.

Taking is destructive: a learner process killed between taking and learning
loses those events for the online KAN (they stay applied, in the log, and in
the next retrain). The online model is a statistical estimate refreshed by
the weekly retrain, and that is the trade for one task per burst.

Two implementations of one small interface, as the event stream: a Redis
list (production, tests) and process memory (the embedded mode).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from apex_site.per_process import PerRedisUrl

LIST = "apex:online:inbox"


class OnlineInbox(Protocol):
    def push(self, event_ids: Sequence[int]) -> None: ...

    def take(self, count: int) -> list[int]:
        """Remove and return up to ``count`` of the oldest ids."""
        ...


class RedisOnlineInbox:
    def __init__(self, url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
        )

    def push(self, event_ids: Sequence[int]) -> None:
        if event_ids:
            self.redis.rpush(LIST, *event_ids)

    def take(self, count: int) -> list[int]:
        return [int(v) for v in self.redis.lpop(LIST, count) or ()]


class InProcessOnlineInbox:
    def __init__(self) -> None:
        self._ids: deque[int] = deque()
        self._lock = threading.Lock()

    def push(self, event_ids: Sequence[int]) -> None:
        with self._lock:
            self._ids.extend(event_ids)

    def take(self, count: int) -> list[int]:
        with self._lock:
            return [self._ids.popleft() for _ in range(min(count, len(self._ids)))]


_inboxes: PerRedisUrl[OnlineInbox] = PerRedisUrl(RedisOnlineInbox, InProcessOnlineInbox)


def get_online_inbox() -> OnlineInbox:
    """This process's inbox: Redis when ``REDIS_URL`` is set, else in-process."""
    return _inboxes.get()


def reset_online_inboxes() -> None:
    _inboxes.clear()
