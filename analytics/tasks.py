"""Celery tasks of the analytics app (explicit names and queues)."""

from __future__ import annotations

from celery import shared_task

from analytics.audits import evaluate_artifact


@shared_task(name="analytics.fairness_audit", queue="training")
def fairness_audit() -> dict:
    """Beat (``APEX_FAIRNESS_AUDIT_HOURS``): audit the current artifact."""
    audit, evaluation = evaluate_artifact()
    return {
        "audit_id": audit.pk,
        "evaluation_id": evaluation.pk,
        "alerts": len(audit.alerts),
    }
