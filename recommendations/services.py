from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction


def feed_group_name(user_id: int) -> str:
    return f"feed.user.{user_id}"


def feed_push(*, user_id: int, payload: dict) -> None:
    """Send a fresh feed to every open tab of the user, after the transaction
    that produced it commits (a rolled-back change is never announced)."""

    def send() -> None:
        layer = get_channel_layer()
        async_to_sync(layer.group_send)(
            feed_group_name(user_id), {"type": "feed.update", "payload": payload}
        )

    transaction.on_commit(send)
