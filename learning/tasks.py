"""Celery tasks of the learning app (explicit names and queues; no payloads)."""

from __future__ import annotations

from celery import shared_task

from learning.exports import events_export


@shared_task(name="learning.export_events", queue="default")
def export_events() -> dict:
    """Daily (CELERY_BEAT_SCHEDULE): new interaction-log rows to the lake."""
    result = events_export()
    return {
        "rows": result.rows,
        "path": str(result.path) if result.path else None,
        "last_event_id": result.last_event_id,
    }
