"""What the recommendations app does when another app announces something.

Connected in ``RecommendationsConfig.ready``. Receivers stay thin: they
enqueue a task. They run after the announcing transaction committed.
"""

from __future__ import annotations

from typing import Any


def on_events_applied(*, users: dict[int, dict[str, Any]], **_kwargs: Any) -> None:
    """The online coordinator applied new events (``learning.signals.
    events_applied``): refresh the live feed of each user with a positive one
    (a watchlist toggle changes nothing served), saying what caused it."""
    from recommendations.tasks import feed_refresh

    for user_id, cause in users.items():
        if cause.get("positive"):
            feed_refresh.delay(user_id, cause.get("event_id"))
