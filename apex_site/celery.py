"""The Celery application, configured from Django settings (``CELERY_`` names).

Every task has an explicit ``name=`` and ``queue=`` so moving code never
orphans queued messages. The one platform task lives here: a heartbeat that
``/v1/platform/status`` reports.
"""

from __future__ import annotations

import logging
import os
import time

from celery import Celery
from celery.signals import setup_logging, worker_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apex_site.settings.base")

app = Celery("apex")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "platform:heartbeat:{hostname}"
HEARTBEAT_INDEX_KEY = "platform:heartbeat:workers"


@setup_logging.connect
def _use_django_logging(**_kwargs) -> None:
    """Log through Django's LOGGING instead of Celery's own handlers."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@worker_init.connect
def _load_urlconf(**_kwargs) -> None:
    """Import the URLconf (and the views, the serving stack) in the worker's
    main process, before the pool forks: every pool process starts with it
    instead of paying seconds of imports in its first task that builds a
    URL (a feed refresh; ``apex_site/warmup.py``)."""
    from apex_site.warmup import load_urlconf

    load_urlconf()


@app.task(name="platform.record_heartbeat", queue="default", ignore_result=False)
def record_heartbeat(hostname: str | None = None) -> dict:
    """Record that a worker is alive; idempotent (last write wins)."""
    from django.core.cache import cache

    hostname = hostname or record_heartbeat.request.hostname or "in-process"
    now = time.time()
    ttl = 10 * _heartbeat_interval()
    cache.set(HEARTBEAT_KEY.format(hostname=hostname), now, timeout=ttl)
    workers = set(cache.get(HEARTBEAT_INDEX_KEY) or [])
    workers.add(hostname)
    cache.set(HEARTBEAT_INDEX_KEY, sorted(workers), timeout=None)
    logger.debug("heartbeat recorded", extra={"worker": hostname})
    return {"hostname": hostname, "at": now}


@worker_ready.connect
def _heartbeat_on_start(sender=None, **_kwargs) -> None:
    """Announce a new worker at once instead of waiting for the first beat."""
    record_heartbeat.apply_async(kwargs={"hostname": sender.hostname}, queue="default")


def _heartbeat_interval() -> int:
    from django.conf import settings

    return settings.APEX_HEARTBEAT_SECONDS
