"""Request latency and errors per route: Prometheus histograms + SLO windows.

Every request is recorded twice, both in memory only (the request path never
touches the database or waits on Redis):

1. a ``prometheus-client`` histogram (``apex_http_request_duration_seconds``,
   labels route / method / status class) for Prometheus to scrape at
   ``/metrics``. With ``PROMETHEUS_MULTIPROC_DIR`` set, each worker process
   writes its samples to files there and ``/metrics`` merges them; the
   gunicorn config marks a dead worker's files (``child_exit``).
2. a count per (minute, route, latency bucket) and per (minute, route) of
   5xx answers, kept in a dict of this process and added to Redis every
   ``APEX_SLO_FLUSH_SECONDS`` by a background thread (one pipeline of
   ``HINCRBY`` into one hash per minute, kept 25 hours). Prometheus
   histograms are cumulative since the process started, so they cannot say
   "the last 5 minutes" by themselves; the per-minute hashes can, for every
   process together. ``GET /v1/platform/slo`` reads the last 1,440 hashes
   and computes p50 / p95 / p99 by linear interpolation inside the bucket
   (as Prometheus' ``histogram_quantile`` does), so a quantile is exact to
   within its bucket.

When Redis is down the flush fails with one WARNING, the counts are kept (up
to ``MAX_PENDING`` fields) and sent with the next flush; requests are not
affected. Without Redis (the embedded mode) the windows live in this process.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import Histogram

logger = logging.getLogger(__name__)

# Upper bounds of the latency buckets, milliseconds (the last bucket is +Inf).
BOUNDS_MS: tuple[float, ...] = (
    1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
)  # fmt: skip
WINDOWS: dict[str, int] = {"5m": 5, "1h": 60, "24h": 1440}  # minutes
KEEP_SECONDS = 25 * 3600
MAX_PENDING = 200_000
ERRORS = "err"

REQUEST_SECONDS = Histogram(
    "apex_http_request_duration_seconds",
    "Time from the first middleware to the response, per route.",
    ["route", "method", "status"],
    buckets=[b / 1000 for b in BOUNDS_MS],
)


def route_of(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return "(unmatched)"
    return match.route


# ---------------------------------------------------------------- the store
class MinuteStore:
    """Counts per minute in Redis (``redis_url``) or in this process."""

    def __init__(self, *, redis_url: str | None, prefix: str = "apex:slo") -> None:
        self.prefix = prefix
        self.redis_url = redis_url
        self._client: Any = None
        self._local: dict[int, dict[str, int]] = {}
        self._lock = threading.Lock()

    def key(self, minute: int) -> str:
        return f"{self.prefix}:{minute}"

    def client(self) -> Any:
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(
                self.redis_url, socket_timeout=1, socket_connect_timeout=1
            )
        return self._client

    def add(self, counts: dict[tuple[int, str], int]) -> None:
        if not self.redis_url:
            with self._lock:
                for (minute, field), n in counts.items():
                    row = self._local.setdefault(minute, {})
                    row[field] = row.get(field, 0) + n
                oldest = int(time.time() // 60) - KEEP_SECONDS // 60
                for minute in [m for m in self._local if m < oldest]:
                    del self._local[minute]
            return
        pipe = self.client().pipeline(transaction=False)
        minutes = set()
        for (minute, field), n in counts.items():
            pipe.hincrby(self.key(minute), field, n)
            minutes.add(minute)
        for minute in minutes:
            pipe.expire(self.key(minute), KEEP_SECONDS)
        pipe.execute()

    def read(self, minutes: list[int]) -> list[dict[str, int]]:
        if not self.redis_url:
            with self._lock:
                return [dict(self._local.get(m, {})) for m in minutes]
        pipe = self.client().pipeline(transaction=False)
        for minute in minutes:
            pipe.hgetall(self.key(minute))
        return [{k.decode(): int(v) for k, v in row.items()} for row in pipe.execute()]

    def clear(self) -> None:
        if not self.redis_url:
            with self._lock:
                self._local.clear()
            return
        client = self.client()
        for key in client.scan_iter(f"{self.prefix}:*"):
            client.delete(key)


# -------------------------------------------------------------- the recorder
class Recorder:
    """Counts of this process not yet in the store, and the flusher thread."""

    def __init__(self, store: MinuteStore, *, flush_seconds: float) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self._pending: dict[tuple[int, str], int] = {}
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._failing = False

    def record(self, route: str, ms: float, status: int, *, at: float) -> None:
        minute = int(at // 60)
        bucket = bisect.bisect_left(BOUNDS_MS, ms)
        with self._lock:
            pending = self._pending
            key = (minute, f"{route}\t{bucket}")
            pending[key] = pending.get(key, 0) + 1
            if status >= 500:
                key = (minute, f"{route}\t{ERRORS}")
                pending[key] = pending.get(key, 0) + 1
        if self._pid != os.getpid():
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()  # a forked worker starts its own thread
        thread = threading.Thread(target=self._loop, name="slo-flush", daemon=True)
        thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(self.flush_seconds)
            self.flush()

    def flush(self) -> bool:
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return True
        try:
            self.store.add(batch)
        except Exception as exc:  # Redis down: keep the counts for the next try
            with self._lock:
                for key, n in batch.items():
                    if len(self._pending) < MAX_PENDING or key in self._pending:
                        self._pending[key] = self._pending.get(key, 0) + n
            if not self._failing:
                logger.warning("slo flush failed", extra={"error": str(exc)})
            self._failing = True
            return False
        self._failing = False
        return True


_recorder: Recorder | None = None
_recorder_lock = threading.Lock()


def get_recorder() -> Recorder:
    global _recorder
    if _recorder is None:
        with _recorder_lock:
            if _recorder is None:
                _recorder = Recorder(
                    MinuteStore(redis_url=settings.REDIS_URL),
                    flush_seconds=settings.APEX_SLO_FLUSH_SECONDS,
                )
    return _recorder


def set_recorder(recorder: Recorder | None) -> None:
    global _recorder
    _recorder = recorder


class SloMiddleware:
    """Times every request and records it (first in ``MIDDLEWARE``)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.histogram = REQUEST_SECONDS

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        seconds = time.perf_counter() - started
        route = route_of(request)
        status = response.status_code
        self.histogram.labels(route, request.method, f"{status // 100}xx").observe(
            seconds
        )
        (_recorder or get_recorder()).record(
            f"{request.method} {route}", seconds * 1000, status, at=time.time()
        )
        return response


# ------------------------------------------------------------------ the report
def quantile(q: float, counts: list[int]) -> float | None:
    """The ``q`` quantile (ms) of bucket counts (``len(BOUNDS_MS) + 1``),
    interpolated linearly inside its bucket; the +Inf bucket answers with the
    highest finite bound. None without observations."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    cumulative = 0
    for i, n in enumerate(counts):
        if n and cumulative + n >= rank:
            if i >= len(BOUNDS_MS):
                return BOUNDS_MS[-1]
            low = BOUNDS_MS[i - 1] if i > 0 else 0.0
            high = BOUNDS_MS[i]
            return low + (high - low) * (rank - cumulative) / n
        cumulative += n
    return BOUNDS_MS[-1]


@dataclass(frozen=True)
class Targets:
    availability: float
    p95_ms: float


def targets_for(route: str) -> Targets:
    return Targets(
        availability=settings.APEX_SLO_AVAILABILITY,
        p95_ms=settings.APEX_SLO_ROUTE_P95_MS.get(route, settings.APEX_SLO_P95_MS),
    )


def report(*, now: float | None = None, recorder: Recorder | None = None) -> dict:
    """Per route and window: requests, p50/p95/p99, error rate, targets,
    error budget left (1 = untouched, 0 = spent, below 0 = overspent)."""
    recorder = recorder or get_recorder()
    recorder.flush()  # this process' latest counts too
    now = time.time() if now is None else now
    current = int(now // 60)
    longest = max(WINDOWS.values())
    minutes = list(range(current - longest + 1, current + 1))
    rows = recorder.store.read(minutes)
    n_buckets = len(BOUNDS_MS) + 1
    # per window, per route: bucket counts and errors
    acc: dict[str, dict[str, list[int]]] = {w: {} for w in WINDOWS}
    for age, row in enumerate(reversed(rows)):  # age 0 = this minute
        for field, n in row.items():
            route, _, part = field.rpartition("\t")
            for window, span in WINDOWS.items():
                if age >= span:
                    continue
                counts = acc[window].setdefault(route, [0] * (n_buckets + 1))
                if part == ERRORS:
                    counts[n_buckets] += n
                else:
                    counts[int(part)] += n
    routes: dict[str, dict[str, Any]] = {}
    for window, per_route in acc.items():
        for route, counts in per_route.items():
            buckets, errors = counts[:n_buckets], counts[n_buckets]
            total = sum(buckets)
            targets = targets_for(route)
            allowed = (1 - targets.availability) * total
            entry = routes.setdefault(
                route,
                {
                    "route": route,
                    "targets": {
                        "availability": targets.availability,
                        "p95_ms": targets.p95_ms,
                    },
                    "windows": {},
                },
            )
            p95 = quantile(0.95, buckets)
            entry["windows"][window] = {
                "requests": total,
                "errors": errors,
                "error_rate": errors / total if total else 0.0,
                "p50_ms": quantile(0.50, buckets),
                "p95_ms": p95,
                "p99_ms": quantile(0.99, buckets),
                "latency_met": p95 is None or p95 <= targets.p95_ms,
                "error_budget_left": (1 - errors / allowed) if allowed else 1.0,
            }
    for entry in routes.values():
        for window in WINDOWS:
            entry["windows"].setdefault(window, None)
    return {
        "generated_at": now,
        "windows": {w: m * 60 for w, m in WINDOWS.items()},
        "bucket_bounds_ms": list(BOUNDS_MS),
        "routes": sorted(routes.values(), key=lambda r: r["route"]),
    }
