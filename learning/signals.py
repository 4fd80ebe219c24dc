"""The one announcement of a live interaction.

``interaction_recorded`` is sent by ``learning.services.interaction_record``
after the transaction that wrote the row commits (never for a rolled-back or
repeated write, never for bulk imports). Receivers are connected in their
app's ``AppConfig.ready()``; ``recommendations`` enqueues a feed refresh.

Keyword arguments: ``event_id``, ``user_id``, ``movie_id``, ``kind`` and
``positive`` (the kind is in ``POSITIVE_KINDS``: it changes the history the
models read). A receiver that raises is logged and never fails the write.
"""

from __future__ import annotations

from django.dispatch import Signal

interaction_recorded = Signal()

events_applied = Signal()
"""Sent by ``learning.coordinator`` after a batch of events was applied to the
online state (profiles, feature tables) and committed. Keyword arguments:
``users``: ``{user_id: {"event_id", "kind", "movie_id", "positive"}}`` —
each user's newest applied event in the batch, a positive one where there is
one (what caused the change; ``positive``: it changed the history the models
read); ``event_ids``: every event applied, oldest first. Receivers are
connected in their app's ``AppConfig.ready()``; ``recommendations`` refreshes
those users' live feeds."""
