"""Celery, read by ``apex_site/celery.py`` through the ``CELERY_`` namespace."""

from __future__ import annotations

from datetime import timedelta

from celery.schedules import crontab

from ..environment import env_bool, env_int
from .engine import APEX_RETRAIN_HOURS
from .events import APEX_EVENTS_DRAIN_SECONDS, APEX_ONLINE_FOLD_MINUTES
from .redis import REDIS_URL

__all__ = [
    "APEX_HEARTBEAT_SECONDS",
    "CELERY_ACCEPT_CONTENT",
    "CELERY_BEAT_SCHEDULE",
    "CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "CELERY_RESULT_EXPIRES",
    "CELERY_TASK_ACKS_LATE",
    "CELERY_TASK_ALWAYS_EAGER",
    "CELERY_TASK_DEFAULT_QUEUE",
    "CELERY_TASK_EAGER_PROPAGATES",
    "CELERY_TASK_SERIALIZER",
    "CELERY_WORKER_HIJACK_ROOT_LOGGER",
    "CELERY_WORKER_PREFETCH_MULTIPLIER",
]

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
# Without a broker there is no worker: run tasks in-process, as the embedded
# mode promises. APEX_CELERY_EAGER overrides in either direction.
CELERY_TASK_ALWAYS_EAGER = env_bool("APEX_CELERY_EAGER", REDIS_URL is None)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_EXPIRES = timedelta(hours=6)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
APEX_HEARTBEAT_SECONDS = env_int("APEX_HEARTBEAT_SECONDS", 30, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "platform-heartbeat": {
        "task": "platform.record_heartbeat",
        "schedule": APEX_HEARTBEAT_SECONDS,
        "options": {"queue": "default", "expires": APEX_HEARTBEAT_SECONDS},
    },
    # New interaction-log rows to the lake's landing zone for the Spark ETL.
    "learning-export-events": {
        "task": "learning.export_events",
        "schedule": crontab(minute=15, hour=2),
        "options": {"queue": "default"},
    },
    # The online coordinator's safety net (each publish kicks it too) and the
    # outbox catch-up (events whose publish failed, e.g. Redis was down).
    "learning-drain-events": {
        "task": "learning.drain_events",
        "schedule": APEX_EVENTS_DRAIN_SECONDS,
        "options": {"queue": "learning", "expires": APEX_EVENTS_DRAIN_SECONDS},
    },
    "learning-republish-events": {
        "task": "learning.republish_events",
        "schedule": 60,
        "options": {"queue": "learning", "expires": 60},
    },
}
if APEX_ONLINE_FOLD_MINUTES:
    CELERY_BEAT_SCHEDULE["recommendations-online-fold"] = {
        "task": "recommendations.online_fold",
        "schedule": timedelta(minutes=APEX_ONLINE_FOLD_MINUTES),
        "options": {"queue": "online", "expires": 60 * APEX_ONLINE_FOLD_MINUTES},
    }
if APEX_RETRAIN_HOURS:
    CELERY_BEAT_SCHEDULE["recommendations-retrain"] = {
        "task": "recommendations.model_train",
        "schedule": timedelta(hours=APEX_RETRAIN_HOURS),
        "options": {"queue": "training", "expires": 3600 * APEX_RETRAIN_HOURS},
    }
