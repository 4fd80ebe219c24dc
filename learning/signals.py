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
