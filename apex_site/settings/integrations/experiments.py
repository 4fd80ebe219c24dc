"""The impression log and A/B experiments (``experiments/``)."""

from __future__ import annotations

from ..environment import env_bool, env_float, env_int
from .celery import CELERY_BEAT_SCHEDULE

__all__ = [
    "APEX_EXPERIMENTS_CACHE_SECONDS",
    "APEX_IMPRESSIONS_BATCH",
    "APEX_IMPRESSIONS_CANDIDATES_SHARE",
    "APEX_IMPRESSIONS_ENABLED",
    "APEX_IMPRESSIONS_FLUSH_SECONDS",
    "APEX_IMPRESSIONS_MIN_SLATES",
]

# Record one slate per served list (off: slate_record is a no-op).
APEX_IMPRESSIONS_ENABLED = env_bool("APEX_IMPRESSIONS_ENABLED", True)
# Slates per database insert; a buffer this long also kicks a flush at once.
APEX_IMPRESSIONS_BATCH = env_int("APEX_IMPRESSIONS_BATCH", 500, minimum=1)
# Beat flushes the impression buffer every this many seconds.
APEX_IMPRESSIONS_FLUSH_SECONDS = env_int("APEX_IMPRESSIONS_FLUSH_SECONDS", 5, minimum=1)
# Serving processes re-read the running experiments this often.
APEX_EXPERIMENTS_CACHE_SECONDS = env_int(
    "APEX_EXPERIMENTS_CACHE_SECONDS", 10, minimum=0
)
# The share of served user lists whose candidates' member scores are logged
# with the slate (what `debias --from-impressions` replays; ~10-20 KB each,
# and such a list is computed by the engine, never taken from the cache).
APEX_IMPRESSIONS_CANDIDATES_SHARE = env_float(
    "APEX_IMPRESSIONS_CANDIDATES_SHARE", 0.1, minimum=0.0, below=1.0 + 1e-9
)
# `manage.py debias --from-impressions` needs at least this many logged slates
# with candidate scores; fewer: it falls back to the popularity proxy.
APEX_IMPRESSIONS_MIN_SLATES = env_int("APEX_IMPRESSIONS_MIN_SLATES", 1000, minimum=1)

# The beat entry lives with the app's other settings (one schedule dict).
CELERY_BEAT_SCHEDULE["experiments-flush-impressions"] = {
    "task": "experiments.flush_impressions",
    "schedule": APEX_IMPRESSIONS_FLUSH_SECONDS,
    "options": {"queue": "default", "expires": APEX_IMPRESSIONS_FLUSH_SECONDS},
}
