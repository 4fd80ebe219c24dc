"""The event stream between the interaction log and the online coordinator.

One small interface, two implementations:

- :class:`RedisEventStream` (production, tests): a Redis Stream
  (``apex:events``) read by the consumer group ``learning`` with
  ``XREADGROUP``; ``XACK`` after the batch's updates committed; entries left
  pending by a dead consumer are re-claimed with ``XAUTOCLAIM``; an entry
  delivered more than ``MAX_DELIVERIES`` times goes to the dead-letter stream
  ``apex:events:dead``.
- :class:`InProcessEventStream` (the embedded mode: no Redis): the same
  semantics in process memory, so the coordinator runs the same code path.

The stream carries event ids only: the interaction log is the source of
truth, and the coordinator reads the rows. Publishing is at least once
(after commit, and again by the outbox catch-up), applying is exactly once
(``AppliedEvent``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from apex_site.per_process import PerRedisUrl

STREAM = "apex:events"
DEAD_LETTERS = "apex:events:dead"
GROUP = "learning"
MAX_DELIVERIES = 5
MAX_LENGTH = 1_000_000  # approximate trim: the log keeps the events, not Redis
WAKE = "apex:events:wake"
WAKE_TTL_S = 5  # bounds the wait should an enqueued drain be lost (beat drains too)


@dataclass(frozen=True)
class StreamEntry:
    entry_id: str
    event_id: int
    deliveries: int  # including this delivery


class EventStream(Protocol):
    def publish(self, event_ids: Sequence[int], *, forget: Sequence[str] = ()) -> bool:
        """Append ``event_ids`` and raise the wake flag (for ``WAKE_TTL_S``),
        in one round trip, deleting first the keys ``forget`` (raw keys on
        the stream's server: a cache on the same Redis that the events made
        stale). True when the flag was down: no drain is waiting for these
        events, so the caller enqueues one."""
        ...

    def wake_lower(self) -> None:
        """Lower the wake flag. A drain calls it before it reads: an event
        published after that raises the flag again and enqueues the next
        drain; one published before is read by this one."""
        ...

    def read(self, *, consumer: str, count: int, block_ms: int) -> list[StreamEntry]:
        """New entries for ``consumer`` (at most ``count``; waits up to
        ``block_ms`` for the first one)."""
        ...

    def claim_stale(
        self, *, consumer: str, min_idle_ms: int, count: int
    ) -> list[StreamEntry]:
        """Entries another consumer took and left unacknowledged for
        ``min_idle_ms`` (it died), now ``consumer``'s."""
        ...

    def ack(self, entry_ids: Sequence[str]) -> None: ...

    def dead_letter(self, entry: StreamEntry, error: str) -> None:
        """Give up on ``entry``: copy it to the dead letters and acknowledge."""
        ...

    def backlog(self) -> dict[str, Any]:
        """``length``, ``pending`` (delivered, not acknowledged), ``lag``."""
        ...


# ------------------------------------------------------------------ Redis
class RedisEventStream:
    def __init__(self, url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
        )
        self._group_ready = False

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        import redis

        try:
            self.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def publish(self, event_ids: Sequence[int], *, forget: Sequence[str] = ()) -> bool:
        pipe = self.redis.pipeline(transaction=False)
        if forget:
            pipe.delete(*forget)
        for event_id in event_ids:
            pipe.xadd(
                STREAM, {"event_id": event_id}, maxlen=MAX_LENGTH, approximate=True
            )
        pipe.set(WAKE, 1, nx=True, ex=WAKE_TTL_S)
        return bool(pipe.execute()[-1])

    def wake_lower(self) -> None:
        self.redis.delete(WAKE)

    def _entries(self, raw: Any, deliveries: dict[str, int]) -> list[StreamEntry]:
        out = []
        for entry_id, fields in raw or ():
            if fields is None:  # trimmed away while pending
                continue
            key = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            out.append(
                StreamEntry(key, int(fields[b"event_id"]), deliveries.get(key, 1))
            )
        return out

    def _grouped(self, call: Any) -> Any:
        """``call()`` with the consumer group in place: created when missing,
        and again should Redis have lost it (a restart without persistence,
        a flush)."""
        import redis

        self._ensure_group()
        try:
            return call()
        except redis.ResponseError as exc:
            # NOGROUP: the group is gone; "no such key" (XINFO): the stream is
            if "NOGROUP" not in str(exc) and "no such key" not in str(exc):
                raise
            self._group_ready = False
            self._ensure_group()
            return call()

    def read(self, *, consumer: str, count: int, block_ms: int) -> list[StreamEntry]:
        reply = self._grouped(
            lambda: self.redis.xreadgroup(
                GROUP, consumer, {STREAM: ">"}, count=count, block=block_ms or None
            )
        )
        raw = reply[0][1] if reply else []
        return self._entries(raw, {})

    def claim_stale(
        self, *, consumer: str, min_idle_ms: int, count: int
    ) -> list[StreamEntry]:
        _next, raw, *_deleted = self._grouped(
            lambda: self.redis.xautoclaim(
                STREAM, GROUP, consumer, min_idle_time=min_idle_ms, count=count
            )
        )
        if not raw:
            return []
        ids = [e[0].decode() if isinstance(e[0], bytes) else e[0] for e in raw]
        pending = self.redis.xpending_range(
            STREAM, GROUP, min=ids[0], max=ids[-1], count=len(ids) * 4
        )
        deliveries = {
            (p["message_id"].decode() if isinstance(p["message_id"], bytes)
             else p["message_id"]): int(p["times_delivered"])
            for p in pending
        }  # fmt: skip
        return self._entries(raw, deliveries)

    def ack(self, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            self.redis.xack(STREAM, GROUP, *entry_ids)

    def dead_letter(self, entry: StreamEntry, error: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(
            DEAD_LETTERS,
            {
                "event_id": entry.event_id,
                "entry_id": entry.entry_id,
                "deliveries": entry.deliveries,
                "error": error[:2000],
            },
            maxlen=100_000,
            approximate=True,
        )
        pipe.xack(STREAM, GROUP, entry.entry_id)
        pipe.execute()

    def backlog(self) -> dict[str, Any]:
        groups = {
            (g["name"].decode() if isinstance(g["name"], bytes) else g["name"]): g
            for g in self._grouped(lambda: self.redis.xinfo_groups(STREAM))
        }
        group = groups.get(GROUP, {})
        return {
            "length": int(self.redis.xlen(STREAM)),
            "pending": int(group.get("pending", 0)),
            "lag": group.get("lag"),
            "dead_letters": int(self.redis.xlen(DEAD_LETTERS)),
        }


# ------------------------------------------------------------------ in process
class InProcessEventStream:
    """The embedded mode's stream: one process, the same semantics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._new: OrderedDict[str, int] = OrderedDict()
        # entry id -> (event id, deliveries, consumer, delivered at)
        self._pending: OrderedDict[str, tuple[int, int, str, float]] = OrderedDict()
        self._sequence = 0
        self._wake_until = 0.0  # monotonic time the wake flag expires
        self.dead: list[tuple[StreamEntry, str]] = []

    def publish(self, event_ids: Sequence[int], *, forget: Sequence[str] = ()) -> bool:
        # ``forget``: no Redis in the embedded mode, so never given one
        with self._lock:
            for event_id in event_ids:
                self._sequence += 1
                self._new[f"{int(time.time() * 1000)}-{self._sequence}"] = event_id
            now = time.monotonic()
            if now < self._wake_until:
                return False
            self._wake_until = now + WAKE_TTL_S
            return True

    def wake_lower(self) -> None:
        with self._lock:
            self._wake_until = 0.0

    def read(self, *, consumer: str, count: int, block_ms: int) -> list[StreamEntry]:
        with self._lock:
            out = []
            while self._new and len(out) < count:
                entry_id, event_id = self._new.popitem(last=False)
                self._pending[entry_id] = (event_id, 1, consumer, time.monotonic())
                out.append(StreamEntry(entry_id, event_id, 1))
            return out

    def claim_stale(
        self, *, consumer: str, min_idle_ms: int, count: int
    ) -> list[StreamEntry]:
        now = time.monotonic()
        with self._lock:
            out = []
            for entry_id, (event_id, deliveries, _c, at) in list(self._pending.items()):
                if len(out) >= count:
                    break
                if (now - at) * 1000 >= min_idle_ms:
                    self._pending[entry_id] = (event_id, deliveries + 1, consumer, now)
                    out.append(StreamEntry(entry_id, event_id, deliveries + 1))
            return out

    def ack(self, entry_ids: Sequence[str]) -> None:
        with self._lock:
            for entry_id in entry_ids:
                self._pending.pop(entry_id, None)

    def dead_letter(self, entry: StreamEntry, error: str) -> None:
        with self._lock:
            self.dead.append((entry, error))
            self._pending.pop(entry.entry_id, None)

    def backlog(self) -> dict[str, Any]:
        with self._lock:
            return {
                "length": len(self._new) + len(self._pending),
                "pending": len(self._pending),
                "lag": len(self._new),
                "dead_letters": len(self.dead),
            }


_streams: PerRedisUrl[EventStream] = PerRedisUrl(RedisEventStream, InProcessEventStream)


def get_event_stream() -> EventStream:
    """This process's stream: Redis when ``REDIS_URL`` is set, else in-process."""
    return _streams.get()


def reset_event_streams() -> None:
    """Forget this process's streams (tests that change ``REDIS_URL``)."""
    _streams.clear()
