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
    events_applied``): the online KAN learns from them (one learner, queue
    ``online``), and the live feed of each user with a positive one and an
    open feed tab is refreshed (a watchlist toggle changes nothing served;
    a user without a tab gets the fresh list at the next request, whose
    caches the writer dropped), saying what caused it."""
    from recommendations.selectors import feed_tabs_open
    from recommendations.tasks import feed_refresh, online_learn

    for user_id, cause in users.items():
        if (
            cause.get("positive")
            and feed_tabs_open(user_id=user_id)
            and refresh_claim(user_id, cause.get("event_id"))
        ):
            feed_refresh.delay(user_id, cause.get("event_id"))
    if event_ids and settings.APEX_ONLINE_LEARNING:
        try:
            online_learn.delay(event_ids)
        except Exception:  # noqa: BLE001 - never stops the feed refresh
            logger.warning("could not hand events to the online learner", exc_info=True)


REFRESH_KEY = "recommendations:feed-refresh:{user_id}"
REFRESH_TTL_S = 15  # bounds the wait should a refresh task be lost


def refresh_claim(user_id: int, event_id: int | None) -> bool:
    """At most one feed refresh waits per user: ``True`` when none waits (the
    caller enqueues one); else the waiting one is told the newer cause. The
    task releases the claim before it reads (``refresh_release``), so an
    event after that enqueues a new refresh and one before is in its feed."""
    key = REFRESH_KEY.format(user_id=user_id)
    try:
        if cache.add(key, event_id, timeout=REFRESH_TTL_S):
            return True
        cache.set(key, event_id, timeout=REFRESH_TTL_S)
        return False
    except Exception:  # noqa: BLE001 - no cache: refresh anyway
        return True


def refresh_release(user_id: int, event_id: int | None) -> int | None:
    """Release the user's refresh claim; the newest cause it was told of."""
    key = REFRESH_KEY.format(user_id=user_id)
    try:
        newest = cache.get(key)
        cache.delete(key)
    except Exception:  # noqa: BLE001
        return event_id
    return newest if isinstance(newest, int) and newest > (event_id or 0) else event_id


def on_entitlements_changed(
    *, user_id: int, plan: str, state: str, **_kwargs: Any
) -> None:
    """A user's plan changed (``billing.signals.entitlements_changed``, after
    the webhook's commit): their open tabs hear of it."""
    from recommendations.services import account_push

    account_push(user_id=user_id, payload={"plan": plan, "state": state})
