"""Celery tasks of the recommendations app (explicit names and queues; ids only).

Each task loads by id and calls one service. ``feed_refresh`` is enqueued
after commit by the ``interaction_recorded`` receiver (``apps.py``); in the
embedded mode (no broker) Celery runs it in-process.
"""

from __future__ import annotations

from celery import shared_task

from recommendations import services


@shared_task(name="recommendations.feed_refresh", queue="default", ignore_result=True)
def feed_refresh(user_id: int) -> None:
    """Recompute the user's feed and push it to their open tabs."""
    services.feed_refresh(user_id=user_id)


@shared_task(name="recommendations.model_train", queue="training")
def model_train(profile: str = "quick", dataset: str | None = None) -> dict:
    """Retrain on the platform's log and publish (``APEX_RETRAIN_HOURS`` beat
    entry, or on demand). Activates the new version, as ``manage.py train``."""
    result = services.model_train(profile=profile, dataset=dataset)
    return {
        "artifact_version": result.artifact_version,
        "weights_version": result.weights_version,
        "metrics": result.metrics,
        "seconds": round(result.seconds, 1),
    }
