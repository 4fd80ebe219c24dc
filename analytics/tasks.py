"""Celery tasks of the analytics app (explicit names and queues)."""

from __future__ import annotations

from celery import shared_task

from analytics.services import fairness_audit_run


@shared_task(name="analytics.fairness_audit", queue="training")
def fairness_audit() -> dict:
    """Beat (``APEX_FAIRNESS_AUDIT_HOURS``): audit the current artifact on
    held-out users and what was served since the last run."""
    return fairness_audit_run()
