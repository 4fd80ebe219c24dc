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
from celery.signals import (
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_ready,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apex_site.settings.base")

app = Celery("apex")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Celery's Django fix-up closes every database connection before and after
# each task and, in a prefork worker with psycopg's pool, the whole pool: every
# task started new PostgreSQL backends (a feed refresh took 31-47 ms as a task
# against 7 ms in process, issue 13). A reuse count this large turns that off
# (the fix-up still closes what a child inherits at fork); the two task
# signal receivers below give each task a request's lifecycle instead.
app.conf["CELERY_DB_REUSE_MAX"] = 10**9

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


@worker_init.connect
def _no_connection_at_start(**_kwargs) -> None:
    """The worker's main process lets go of the database connection (and pool)
    that start-up opened, before its pool starts: the fix-up's process-init
    (which the solo pool sends too) closes the socket of a connection still
    open without telling psycopg, whose pool would then hand the closed - soon
    reused - file descriptor to a task (a query waiting forever on another
    socket)."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        _drop_pool(conn)


@task_prerun.connect
def _usable_connection_for_the_task(sender=None, **_kwargs) -> None:
    """Before a task, its pooled connection answers a ``SELECT 1`` (one round
    trip). One that died idle - PostgreSQL restarted since the last task - means
    every idle one did: the pool is dropped and the task connects afresh
    instead of failing (psycopg's own checks back off 1, 2, 4 s per dead
    connection). Web requests skip this (a round trip each); a dead connection
    there is one 503, then discarded."""
    if _in_process(sender):
        return
    from django.db import DatabaseError, connection

    if not connection.settings_dict.get("OPTIONS", {}).get("pool"):
        return  # no pool: Django's CONN_HEALTH_CHECKS do this
    try:
        connection.ensure_connection()
    except DatabaseError:
        return  # PostgreSQL is down: the task meets it itself
    if not connection.is_usable():
        _drop_pool(connection)


@task_postrun.connect
def _connections_back_after_the_task(sender=None, **_kwargs) -> None:
    """After each task what Django does after each request: a pooled
    connection goes back to the pool (CONN_MAX_AGE is 0 with the pool), a
    broken or old one is closed."""
    if _in_process(sender):
        return
    from django.db import close_old_connections

    close_old_connections()


def _in_process(sender) -> bool:
    """A task run in process (eager) runs inside its caller's transaction:
    its connection is not the worker's to manage."""
    return bool(getattr(getattr(sender, "request", None), "is_eager", False))


def _drop_pool(conn) -> None:
    """Close ``conn`` and this process's pool behind it, if one was built."""
    conn.close()
    if getattr(conn, "_connection_pools", {}).get(conn.alias) is not None:
        conn.close_pool()


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
