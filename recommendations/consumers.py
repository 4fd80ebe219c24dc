"""The live feed websocket: one group per signed-in user.

The consumer stays thin: it authenticates on connect, joins the user's group
and forwards ``feed.update`` events pushed by ``services.feed_push`` and
``billing.update`` events pushed by ``services.account_push``. A tab that
drew a pushed feed answers ``{"type": "shown", "request_id": ...}``, which
logs that feed's slate (``services.feed_shown``; only the user's own). Open
sockets are counted per user (``services.feed_tab_opened``; a tab's
``{"type": "ping"}`` every minute keeps the count alive): events refresh
the feeds of users with a tab open, and only theirs.
"""

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from recommendations.services import (
    feed_group_name,
    feed_shown,
    feed_tab_closed,
    feed_tab_opened,
    feed_tab_seen,
)


class FeedConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.group_name = feed_group_name(user.pk)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        await sync_to_async(feed_tab_opened)(user_id=user.pk)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group_name"):
            await self.channel_layer.group_discard(self.group_name, self.channel_name)
            await sync_to_async(feed_tab_closed)(user_id=self.scope["user"].pk)

    async def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "ping":
            await sync_to_async(feed_tab_seen)(user_id=self.scope["user"].pk)
            await self.send_json({"type": "pong"})
        elif content.get("type") == "shown":  # the tab drew a pushed feed
            await database_sync_to_async(feed_shown)(
                user_id=self.scope["user"].pk,
                request_id=str(content.get("request_id") or "")[:64],
            )

    async def feed_update(self, event: dict) -> None:
        await self.send_json({"type": "feed.update", "payload": event["payload"]})

    async def billing_update(self, event: dict) -> None:
        await self.send_json({"type": "billing.update", "payload": event["payload"]})
