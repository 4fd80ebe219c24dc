"""What the recommendations app does when another app announces something.

Connected in ``RecommendationsConfig.ready``. Receivers stay thin: they
enqueue a task. They run after the announcing transaction committed
(``learning.services`` sends ``interaction_recorded`` from ``on_commit``).
"""

from __future__ import annotations

from typing import Any


def on_interaction_recorded(*, user_id: int, positive: bool, **_kwargs: Any) -> None:
    """A positive event changes the history the models read: refresh the
    user's live feed (a watchlist toggle changes nothing served)."""
    if not positive:
        return
    from recommendations.tasks import feed_refresh

    feed_refresh.delay(user_id)
