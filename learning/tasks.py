"""Celery tasks of the learning app (explicit names and queues; no payloads)."""

from __future__ import annotations

import contextlib

from celery import shared_task

from learning import coordinator, services
from learning.exports import events_export
from learning.stream import get_event_stream


@shared_task(name="learning.export_events", queue="default")
def export_events() -> dict:
    """Daily (CELERY_BEAT_SCHEDULE): new interaction-log rows to the lake."""
    result = events_export()
    return {
        "rows": result.rows,
        "path": str(result.path) if result.path else None,
        "last_event_id": result.last_event_id,
    }


@shared_task(name="learning.drain_events", queue="learning", ignore_result=True)
def drain_events() -> dict:
    """Apply what the event stream holds (kicked per publish; beat safety net)."""
    with contextlib.suppress(Exception):  # Redis away: the drain reports it
        get_event_stream().wake_lower()  # before reading: see EventStream
    return coordinator.events_drain().as_dict()


@shared_task(name="learning.republish_events", queue="learning")
def republish_events() -> dict:
    """The outbox catch-up: publish live events the stream never got."""
    return services.events_republish()
