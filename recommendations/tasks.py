"""Celery tasks of the recommendations app (explicit names and queues; ids only).

Each task loads by id and calls one service. ``feed_refresh`` is enqueued
by the ``events_applied`` receiver (``receivers.py``) once the online
coordinator applied a user's new events; in the embedded mode (no broker)
Celery runs it in-process.
"""

from __future__ import annotations

from celery import shared_task

from recommendations import online, online_fold, receivers, services


@shared_task(name="recommendations.feed_refresh", queue="default", ignore_result=True)
def feed_refresh(user_id: int, event_id: int | None = None) -> None:
    """Recompute the user's feed and push it to their open tabs (``event_id``:
    the event that caused it; the page's note names the newest one)."""
    receivers.refresh_release(user_id)
    services.feed_refresh(user_id=user_id, event_id=event_id)


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


@shared_task(name="recommendations.online_learn", queue="online", ignore_result=True)
def online_learn(event_ids: list[int] | None = None) -> dict:
    """The online KAN learns from the applied events waiting in its inbox
    (``services.online_learn_submit``; ``event_ids``: a message queued
    before the inbox). One worker process consumes ``online``, so there is
    one learner (``recommendations/online.py``)."""
    if event_ids:
        return online.online_learn(event_ids=event_ids)
    return services.online_learn_pending()


@shared_task(name="recommendations.online_fold", queue="online")
def fold_online_state() -> dict:
    """Fold the online KAN's newest snapshot into a new artifact version and
    activate it (``APEX_ONLINE_FOLD_MINUTES`` beat entry). On ``online``, so it
    runs in the one learner process, between its batches, and the learner
    goes on from the new version (``recommendations/online_fold.py``)."""
    return online_fold.online_fold().as_dict()
