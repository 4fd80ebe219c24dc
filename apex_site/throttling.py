"""API throttling with a hook for plan quotas, and the request-path meter.

``PlanRateThrottle`` asks ``settings.APEX_PLAN_RATE_RESOLVER`` (a dotted path
to ``f(request) -> "N/period" | Limits | None``) for the caller's limits:

- a rate string (``default_rate`` below, or billing's answer for calls that
  are not metered): DRF's cache-based rate throttle, as before;
- ``Limits`` (billing's answer for an authenticated call to a metered path,
  ``settings.APEX_METERED_PATHS``): the meter. One Redis round trip (a Lua
  script) checks the per-second rate, checks the monthly quota and counts the
  call — atomically, so concurrent calls can never overshoot the quota — and
  no database write happens on the request path. Over the quota the answer
  is 429 ``quota_exceeded`` with ``Retry-After`` (seconds to the next month);
  over the rate 429 ``throttled`` with ``Retry-After: 1``. Every metered
  answer carries ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (the
  monthly quota, what is left of it, the Unix time it resets), added by
  ``RateLimitHeadersMiddleware``.

The callers' limits come from billing, which keeps them per process; the
meter carries what keeps those copies true. A change of limits (a plan
change, after its commit) bumps ``<prefix>limits:generation``
(``limits_changed``); the script returns that generation with every call, and
``limits_generation`` is the one this process's last metered call saw: limits
kept under another one are stale. So a change reaches every process at its
next metered call, for no extra round trip.

The counters: ``<prefix>{<subject>}:m:<YYYYMM>`` (the month),
``…:d:<YYYYMMDD>`` (the day, rolled up into the database by billing's beat
job) and the set ``<prefix>active:<YYYYMMDD>`` of users counted that day.
Without Redis (the embedded mode) an in-process meter keeps the same
counters. If Redis fails, calls are let through (one WARNING each): an
outage of the counter never takes the API down.
"""

from __future__ import annotations

import calendar
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string
from rest_framework import exceptions
from rest_framework.throttling import SimpleRateThrottle

from apex_site.per_process import PerRedisUrl

logger = logging.getLogger(__name__)

QUOTA_EXCEEDED = "quota_exceeded"
KEY_PREFIX = "apex:meter:"
GENERATION_KEY = f"{KEY_PREFIX}limits:generation"
_DAY_TTL = 14 * 86400  # day counters outlive several missed roll-ups


def default_rate(request) -> str | None:
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    user = getattr(request, "user", None)
    return rates["user"] if user and user.is_authenticated else rates["anon"]


def is_metered(request) -> bool:
    """Whether the request's path counts against a monthly quota."""
    return request.path.startswith(tuple(settings.APEX_METERED_PATHS))


@dataclass(frozen=True)
class Limits:
    """A caller's limits on metered calls (billing's plans fill them in)."""

    subject: str
    """Whose counters: ``u<user id>``."""
    user_id: int | None
    rate_per_second: int
    monthly_quota: int
    """What the headers call the limit."""
    hard_limit: int
    """The count at which calls are refused (≥ the quota for overage plans)."""


@dataclass(frozen=True)
class MeterResult:
    outcome: int  # 0 counted, 1 over the rate, 2 over the quota
    used: int  # metered calls this month, this one included when counted
    generation: int = 0  # of the callers' limits (see the module docstring)

    OK = 0
    RATE = 1
    QUOTA = 2


def month_key(moment: datetime) -> str:
    return moment.strftime("%Y%m")


def month_reset(moment: datetime) -> datetime:
    """The first instant of the month after ``moment`` (UTC)."""
    year, month = (
        (moment.year + 1, 1)
        if moment.month == 12
        else (
            moment.year,
            moment.month + 1,
        )
    )
    return datetime(year, month, 1, tzinfo=UTC)


def _month_seconds(moment: datetime) -> int:
    return calendar.monthrange(moment.year, moment.month)[1] * 86400 + 86400


class Meter(Protocol):
    def hit(self, limits: Limits, now: datetime) -> MeterResult: ...

    def limits_changed(self) -> None: ...

    def month_usage(self, subject: str, moment: datetime) -> int: ...

    def day_usage(self, subject: str, moment: datetime) -> int: ...

    def day_counts(self, day: date) -> dict[int, int]: ...

    def reset(self) -> None: ...


# KEYS: rate window, month, day, the day's active set, the limits' generation.
# ARGV: rate limit, hard limit, month ttl, day ttl, user id ('' for none).
_LUA = """
local gen = tonumber(redis.call('GET', KEYS[5]) or '0')
local rate = tonumber(redis.call('GET', KEYS[1]) or '0')
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if rate >= tonumber(ARGV[1]) then return {1, used, gen} end
if used >= tonumber(ARGV[2]) then return {2, used, gen} end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], 2) end
used = redis.call('INCR', KEYS[2])
if used == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
if redis.call('INCR', KEYS[3]) == 1 then redis.call('EXPIRE', KEYS[3], ARGV[4]) end
if ARGV[5] ~= '' and redis.call('SADD', KEYS[4], ARGV[5]) == 1 then
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
return {0, used, gen}
"""


def _keys(subject: str, now: datetime) -> list[str]:
    base = f"{KEY_PREFIX}{{{subject}}}:"
    return [
        f"{base}r:{int(now.timestamp())}",
        f"{base}m:{month_key(now)}",
        f"{base}d:{now:%Y%m%d}",
        f"{KEY_PREFIX}active:{now:%Y%m%d}",
    ]


class RedisMeter:
    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2)
        self.script = self.client.register_script(_LUA)

    def hit(self, limits: Limits, now: datetime) -> MeterResult:
        outcome, used, generation = self.script(
            keys=[*_keys(limits.subject, now), GENERATION_KEY],
            args=[
                limits.rate_per_second,
                limits.hard_limit,
                _month_seconds(now),
                _DAY_TTL,
                "" if limits.user_id is None else limits.user_id,
            ],
        )
        return MeterResult(int(outcome), int(used), int(generation))

    def limits_changed(self) -> None:
        self.client.incr(GENERATION_KEY)

    def month_usage(self, subject: str, moment: datetime) -> int:
        return int(self.client.get(_keys(subject, moment)[1]) or 0)

    def day_usage(self, subject: str, moment: datetime) -> int:
        return int(self.client.get(_keys(subject, moment)[2]) or 0)

    def day_counts(self, day: date) -> dict[int, int]:
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        users = sorted(int(u) for u in self.client.smembers(_keys("", moment)[3]))
        if not users:
            return {}
        values = self.client.mget([_keys(f"u{u}", moment)[2] for u in users])
        return {u: int(v or 0) for u, v in zip(users, values, strict=True)}

    def reset(self) -> None:
        keys = list(self.client.scan_iter(match=f"{KEY_PREFIX}*", count=1000))
        if keys:
            self.client.delete(*keys)


class MemoryMeter:
    """The embedded mode's meter: the same counters in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = defaultdict(int)
        self.active: dict[str, set[int]] = defaultdict(set)
        self.windows: dict[str, tuple[int, int]] = {}  # subject: (second, calls)
        self.generation = 0

    def hit(self, limits: Limits, now: datetime) -> MeterResult:
        _, m_key, d_key, active_key = _keys(limits.subject, now)
        second = int(now.timestamp())
        with self.lock:
            used = self.counts.get(m_key, 0)
            window, calls = self.windows.get(limits.subject, (second, 0))
            calls = calls if window == second else 0
            if calls >= limits.rate_per_second:
                return MeterResult(MeterResult.RATE, used, self.generation)
            if used >= limits.hard_limit:
                return MeterResult(MeterResult.QUOTA, used, self.generation)
            self.windows[limits.subject] = (second, calls + 1)
            self.counts[m_key] += 1
            self.counts[d_key] += 1
            if limits.user_id is not None:
                self.active[active_key].add(limits.user_id)
            return MeterResult(MeterResult.OK, self.counts[m_key], self.generation)

    def limits_changed(self) -> None:
        with self.lock:
            self.generation += 1

    def month_usage(self, subject: str, moment: datetime) -> int:
        with self.lock:
            return self.counts.get(_keys(subject, moment)[1], 0)

    def day_usage(self, subject: str, moment: datetime) -> int:
        with self.lock:
            return self.counts.get(_keys(subject, moment)[2], 0)

    def day_counts(self, day: date) -> dict[int, int]:
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        with self.lock:
            users = sorted(self.active.get(_keys("", moment)[3], ()))
            return {u: self.counts.get(_keys(f"u{u}", moment)[2], 0) for u in users}

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.active.clear()
            self.windows.clear()
            self.generation = 0


_meters: PerRedisUrl[Meter] = PerRedisUrl(RedisMeter, MemoryMeter)


def meter() -> Meter:
    """This process's meter (Redis when ``REDIS_URL`` is set)."""
    return _meters.get()


_seen_generation = 0


def limits_generation() -> int:
    """The generation of the callers' limits that this process's last metered
    call saw: limits kept under another one are stale."""
    return _seen_generation


def limits_changed() -> None:
    """Someone's limits changed (after the commit): every process drops the
    limits it keeps at its next metered call. If the meter cannot be reached,
    they expire as before (``APEX_BILLING_ENTITLEMENTS_CACHE_SECONDS``)."""
    try:
        meter().limits_changed()
    except Exception:
        logger.warning("limits generation not bumped", exc_info=True)


@dataclass(frozen=True)
class RateLimitInfo:
    limit: int
    remaining: int
    reset: int  # Unix time


class QuotaExceeded(exceptions.Throttled):
    default_code = QUOTA_EXCEEDED


class PlanRateThrottle(SimpleRateThrottle):
    scope = "plan"

    def __init__(self) -> None:  # rates are resolved per request, not per class
        self._wait: float | None = None

    def allow_request(self, request, view) -> bool:
        resolver = import_string(
            getattr(
                settings, "APEX_PLAN_RATE_RESOLVER", "apex_site.throttling.default_rate"
            )
        )
        resolved = resolver(request)
        if resolved is None:
            return True
        if isinstance(resolved, Limits):
            return self._allow_metered(request, resolved)
        self.rate = resolved
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def _allow_metered(self, request, limits: Limits) -> bool:
        now = datetime.now(UTC)
        try:
            result = meter().hit(limits, now)
        except Exception:  # the counter's outage must not take the API down
            logger.warning("metering failed; call let through", exc_info=True)
            return True
        global _seen_generation
        _seen_generation = result.generation
        reset = month_reset(now)
        request._request.apex_rate_limit = RateLimitInfo(
            limit=limits.monthly_quota,
            remaining=max(0, limits.monthly_quota - result.used),
            reset=int(reset.timestamp()),
        )
        if result.outcome == MeterResult.RATE:
            self._wait = 1
            return False
        if result.outcome == MeterResult.QUOTA:
            raise QuotaExceeded(
                wait=max(1, int((reset - now).total_seconds())),
                detail=f"The monthly quota of {limits.monthly_quota:,} metered calls "
                f"is used up; it resets at {reset:%Y-%m-%dT%H:%MZ}. Upgrade your plan "
                "for more.",
                code=QUOTA_EXCEEDED,
            )
        return True

    def wait(self) -> float | None:
        if self._wait is not None:
            return self._wait
        return super().wait()

    def get_cache_key(self, request, view) -> str:
        if request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"anon:{self.get_ident(request)}"
        return f"throttle:plan:{ident}"


class RateLimitHeadersMiddleware:
    """Adds the ``X-RateLimit-*`` headers to every metered answer (the
    throttle leaves them on the request; 429s included)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        info = getattr(request, "apex_rate_limit", None)
        if info is not None:
            response["X-RateLimit-Limit"] = str(info.limit)
            response["X-RateLimit-Remaining"] = str(info.remaining)
            response["X-RateLimit-Reset"] = str(info.reset)
        return response
