"""Analytics (``analytics/``): differential privacy, fairness audits, SLOs."""

from __future__ import annotations

import os
from pathlib import Path

from ..environment import env_float, env_int, env_str
from .celery import CELERY_BEAT_SCHEDULE

__all__ = [
    "APEX_AUDIT_MAX_USERS",
    "APEX_AUDIT_MIN_GROUP_USERS",
    "APEX_DP_EPSILON_CAP",
    "APEX_DP_DEFAULT_EPSILON",
    "APEX_DP_MAX_CONTRIBUTIONS",
    "APEX_FAIRNESS_AUDIT_HOURS",
    "APEX_FAIRNESS_MAX_CALIBRATION_KL",
    "APEX_FAIRNESS_MAX_GINI",
    "APEX_FAIRNESS_MAX_NDCG_GAP",
    "APEX_FAIRNESS_MIN_COVERAGE",
    "APEX_SLO_AVAILABILITY",
    "APEX_SLO_FLUSH_SECONDS",
    "APEX_SLO_P95_MS",
    "APEX_SLO_ROUTE_P95_MS",
    "PROMETHEUS_MULTIPROC_DIR",
]

# ------------------------------------------------------------ differential privacy
# The privacy budget of one data set (the interaction log) per calendar month
# (UTC): the sum of the epsilons of that month's releases may not exceed it.
APEX_DP_EPSILON_CAP = env_float("APEX_DP_EPSILON_CAP", 4.0, minimum=0.0)
# The epsilon of one release when the caller does not ask for another.
APEX_DP_DEFAULT_EPSILON = env_float("APEX_DP_DEFAULT_EPSILON", 0.5, minimum=0.001)
# Each user's records counted by one release are capped at this many (a seeded
# sample of theirs when they have more): the L1 sensitivity of the counts.
APEX_DP_MAX_CONTRIBUTIONS = env_int("APEX_DP_MAX_CONTRIBUTIONS", 20, minimum=1)

# ------------------------------------------------------------------- fairness
# Beat runs `analytics.fairness_audit` this often (0: never; the command still works).
APEX_FAIRNESS_AUDIT_HOURS = env_int("APEX_FAIRNESS_AUDIT_HOURS", 24, minimum=0)
# Held-out users scored per audit (a seeded sample; bounds the audit's time).
APEX_AUDIT_MAX_USERS = env_int("APEX_AUDIT_MAX_USERS", 2000, minimum=10)
# Demographic groups with fewer held-out users are reported but left out of
# the largest gap (their interval is too wide to mean anything).
APEX_AUDIT_MIN_GROUP_USERS = env_int("APEX_AUDIT_MIN_GROUP_USERS", 20, minimum=1)
# An audit beyond any of these raises an alert (admin and dashboard).
APEX_FAIRNESS_MAX_GINI = env_float("APEX_FAIRNESS_MAX_GINI", 0.95, minimum=0.0)
APEX_FAIRNESS_MIN_COVERAGE = env_float("APEX_FAIRNESS_MIN_COVERAGE", 0.02, minimum=0.0)
APEX_FAIRNESS_MAX_NDCG_GAP = env_float("APEX_FAIRNESS_MAX_NDCG_GAP", 0.15, minimum=0.0)
APEX_FAIRNESS_MAX_CALIBRATION_KL = env_float(
    "APEX_FAIRNESS_MAX_CALIBRATION_KL", 3.0, minimum=0.0
)

# ----------------------------------------------------------------------- SLOs
# prometheus-client's multiprocess mode (several web workers): each process
# writes its samples to files here, /metrics merges them. prometheus-client
# reads the variable itself, so it is exported before any metric is created.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
if PROMETHEUS_MULTIPROC_DIR:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
# Targets: the share of requests that must not fail (5xx) and the p95 latency.
APEX_SLO_AVAILABILITY = env_float(
    "APEX_SLO_AVAILABILITY", 0.999, minimum=0.5, below=1.0
)
APEX_SLO_P95_MS = env_float("APEX_SLO_P95_MS", 300.0, minimum=1.0)
# Per-route p95 targets that differ from the default, as `route=ms,route=ms`
# (routes as /v1/platform/slo names them, e.g. `GET v1/search=200`).
APEX_SLO_ROUTE_P95_MS: dict[str, float] = {}
for _item in filter(None, env_str("APEX_SLO_ROUTE_P95_MS").split(",")):
    _route, _, _ms = _item.rpartition("=")
    try:
        APEX_SLO_ROUTE_P95_MS[_route.strip()] = float(_ms)
    except ValueError:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"APEX_SLO_ROUTE_P95_MS item {_item!r} is malformed: expected route=ms."
        ) from None
# Each process adds its per-minute counts to Redis this often (a background
# thread; requests never wait on Redis).
APEX_SLO_FLUSH_SECONDS = env_float("APEX_SLO_FLUSH_SECONDS", 5.0, minimum=0.1)

if APEX_FAIRNESS_AUDIT_HOURS:
    CELERY_BEAT_SCHEDULE["analytics-fairness-audit"] = {
        "task": "analytics.fairness_audit",
        "schedule": APEX_FAIRNESS_AUDIT_HOURS * 3600,
        "options": {"queue": "training", "expires": APEX_FAIRNESS_AUDIT_HOURS * 3600},
    }
