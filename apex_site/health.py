"""Checks of the components APEX depends on, for status and readiness."""

from __future__ import annotations

import logging
import subprocess
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from apex_site.celery import HEARTBEAT_INDEX_KEY, HEARTBEAT_KEY, app

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComponentState:
    ok: bool
    detail: str
    latency_ms: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _timed(check) -> ComponentState:
    started = time.perf_counter()
    try:
        detail = check()
    except Exception as exc:  # a health check reports every failure, never raises
        logger.warning("component check failed", extra={"error": str(exc)})
        return ComponentState(ok=False, detail=f"{type(exc).__name__}: {exc}")
    return ComponentState(
        ok=True,
        detail=detail,
        latency_ms=round((time.perf_counter() - started) * 1e3, 2),
    )


def check_database() -> ComponentState:
    def ping() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return connection.vendor

    return _timed(ping)


def check_redis() -> ComponentState | None:
    """None when Redis is not configured (embedded mode)."""
    if not settings.REDIS_URL:
        return None

    def ping() -> str:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
        try:
            client.ping()
        finally:
            client.close()
        return "pong"

    return _timed(ping)


def celery_state(*, ping_timeout: float = 1.0) -> dict:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {
            "mode": "in-process",
            "workers_online": None,
            "last_heartbeat_age_s": None,
        }
    try:
        replies = app.control.inspect(timeout=ping_timeout).ping() or {}
    except Exception as exc:
        logger.warning("celery ping failed", extra={"error": str(exc)})
        replies = {}
    return {
        "mode": "worker",
        "workers_online": len(replies),
        "workers": sorted(replies),
        "last_heartbeat_age_s": last_heartbeat_age(),
    }


def last_heartbeat_age() -> float | None:
    """Seconds since the newest worker heartbeat, or None if there was none."""
    try:
        workers = cache.get(HEARTBEAT_INDEX_KEY) or []
        beats = [cache.get(HEARTBEAT_KEY.format(hostname=w)) for w in workers]
    except Exception as exc:
        logger.warning("heartbeat lookup failed", extra={"error": str(exc)})
        return None
    beats = [b for b in beats if b is not None]
    return round(time.time() - max(beats), 1) if beats else None


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    if settings.APEX_GIT_COMMIT:
        return settings.APEX_GIT_COMMIT
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(settings.BASE_DIR),
            capture_output=True,
            text=True,
            timeout=2,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
