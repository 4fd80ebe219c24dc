"""The event stream and the online learning coordinator (``learning/``)."""

from __future__ import annotations

from ..environment import env_bool, env_float, env_int
from .redis import REDIS_URL

__all__ = [
    "APEX_EVENTS_CLAIM_IDLE_MS",
    "APEX_EVENTS_DRAIN_SECONDS",
    "APEX_EVENTS_LINGER_MS",
    "APEX_EVENTS_MAX_AGE_DAYS",
    "APEX_ONLINE_FOLD_MINUTES",
    "APEX_ONLINE_GUARD_EVERY",
    "APEX_ONLINE_LEARNING",
    "APEX_ONLINE_GUARD_MARGIN",
]

# POST /v1/events rejects events older than this many days.
APEX_EVENTS_MAX_AGE_DAYS = env_int("APEX_EVENTS_MAX_AGE_DAYS", 30, minimum=1)
# A stream entry a consumer took and has not acknowledged for this long is
# re-claimed by another (its consumer died); also the delay between retries of
# a failing entry.
APEX_EVENTS_CLAIM_IDLE_MS = env_int("APEX_EVENTS_CLAIM_IDLE_MS", 30_000, minimum=0)
# When events are already waiting as the coordinator reads (it is behind),
# it waits this long for more before applying, so a batch carries more
# events for its fixed cost; a read that had to wait applies at once. 0: off
# (the embedded mode's default: its drain runs in the request's process).
APEX_EVENTS_LINGER_MS = env_int(
    "APEX_EVENTS_LINGER_MS", 20 if REDIS_URL else 0, minimum=0
)
# Beat's safety net drains the stream every this many seconds.
APEX_EVENTS_DRAIN_SECONDS = env_int("APEX_EVENTS_DRAIN_SECONDS", 2, minimum=1)
# The online KAN (recommendations/online.py): check the guard (NDCG@10 on a
# held-out slice of the log) after this many updates; roll an update back when
# it falls more than this fraction below the published weights' value.
APEX_ONLINE_GUARD_EVERY = env_int("APEX_ONLINE_GUARD_EVERY", 10, minimum=1)
APEX_ONLINE_GUARD_MARGIN = env_float(
    "APEX_ONLINE_GUARD_MARGIN", 0.02, minimum=0.0, below=1.0
)
# Hand applied events to the online KAN learner (queue `online`); off: the
# KAN changes only with a retrain.
APEX_ONLINE_LEARNING = env_bool("APEX_ONLINE_LEARNING", True)
# Fold the online KAN's newest snapshot into a new artifact version (so a
# restart keeps what was learned; recommendations/online_fold.py) every this
# many minutes, on the learner's queue `online`; 0 = off.
APEX_ONLINE_FOLD_MINUTES = env_int("APEX_ONLINE_FOLD_MINUTES", 60, minimum=0)
