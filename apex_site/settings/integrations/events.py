"""The event stream and the online learning coordinator (``learning/``)."""

from __future__ import annotations

from ..environment import env_int

__all__ = [
    "APEX_EVENTS_CLAIM_IDLE_MS",
    "APEX_EVENTS_DRAIN_SECONDS",
    "APEX_EVENTS_MAX_AGE_DAYS",
]

# POST /v1/events rejects events older than this many days.
APEX_EVENTS_MAX_AGE_DAYS = env_int("APEX_EVENTS_MAX_AGE_DAYS", 30, minimum=1)
# A stream entry a consumer took and has not acknowledged for this long is
# re-claimed by another (its consumer died); also the delay between retries of
# a failing entry.
APEX_EVENTS_CLAIM_IDLE_MS = env_int("APEX_EVENTS_CLAIM_IDLE_MS", 30_000, minimum=0)
# Beat's safety net drains the stream every this many seconds.
APEX_EVENTS_DRAIN_SECONDS = env_int("APEX_EVENTS_DRAIN_SECONDS", 2, minimum=1)
