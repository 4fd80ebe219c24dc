"""Celery tasks of the experiments app (explicit names and queues; no payloads)."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache

from experiments import services


@shared_task(name="experiments.flush_impressions", queue="default", ignore_result=True)
def flush_impressions() -> dict:
    """Move buffered slates to the impression log (kicked per full batch;
    beat runs it every ``APEX_IMPRESSIONS_FLUSH_SECONDS``)."""
    cache.delete(services.KICK_KEY)  # before reading, as learning.drain_events
    return services.impressions_flush().as_dict()
