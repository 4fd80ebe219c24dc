"""What the recommendations app does when another app announces something.

Connected in ``RecommendationsConfig.ready``. Receivers stay thin: they
enqueue a task. They run after the announcing transaction committed.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)


def on_events_applied(
    *, users: dict[int, dict[str, Any]], event_ids: list[int], **_kwargs: Any
) -> None:
    """The online coordinator applied new events (``learning.signals.
    events_applied``): the online KAN learns from them (its inbox and one
    learner, queue ``online``: ``services.online_learn_submit``), and the
    live feed of each user with a positive one and an open feed tab is
    refreshed (a watchlist toggle changes nothing served; a user without a
    tab gets the fresh list at the next request, whose caches the writer
    dropped), saying what caused it."""
    from recommendations.selectors import feed_tabs_open_many
    from recommendations.services import online_learn_submit
    from recommendations.tasks import feed_refresh

    positive = [u for u, cause in users.items() if cause.get("positive")]
    for user_id in sorted(feed_tabs_open_many(user_ids=positive)):
        if refresh_claim(user_id):
            feed_refresh.delay(user_id, users[user_id].get("event_id"))
    if event_ids and settings.APEX_ONLINE_LEARNING:
        online_learn_submit(event_ids=event_ids)  # never raises


REFRESH_KEY = "recommendations:feed-refresh:{user_id}"
REFRESH_TTL_S = 15  # bounds the wait should a refresh task be lost


def refresh_claim(user_id: int) -> bool:
    """At most one feed refresh waits per user: ``True`` when none waits (the
    caller enqueues one). The task releases the claim before it reads
    (``refresh_release``), and it reads what the coordinator committed
    before announcing: an event announced while the claim is held is in the
    waiting refresh's feed and cause, one announced after it enqueues a new
    refresh. (The cause is read at refresh time, not carried here: two
    learners may announce out of order.)"""
    try:
        return bool(cache.add(REFRESH_KEY.format(user_id=user_id), 1, REFRESH_TTL_S))
    except Exception:  # noqa: BLE001 - no cache: refresh anyway
        return True


def refresh_release(user_id: int) -> None:
    """Release the user's refresh claim (the task, before it reads)."""
    try:
        cache.delete(REFRESH_KEY.format(user_id=user_id))
    except Exception:  # noqa: BLE001 - it lapses after REFRESH_TTL_S
        logger.warning("feed refresh claim not released", extra={"user_id": user_id})


def on_entitlements_changed(
    *, user_id: int, plan: str, state: str, **_kwargs: Any
) -> None:
    """A user's plan changed (``billing.signals.entitlements_changed``, after
    the webhook's commit): their open tabs hear of it."""
    from recommendations.services import account_push

    account_push(user_id=user_id, payload={"plan": plan, "state": state})
