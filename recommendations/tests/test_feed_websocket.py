import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.db import transaction

from recommendations.consumers import FeedConsumer
from recommendations.services import feed_push

pytestmark = pytest.mark.django_db(transaction=True)


def _communicator(user):
    communicator = WebsocketCommunicator(FeedConsumer.as_asgi(), "/ws/feed/")
    communicator.scope["user"] = user
    return communicator


@pytest.mark.integration
def test_a_feed_update_travels_through_redis_to_the_socket(user, settings):
    assert "RedisChannelLayer" in settings.CHANNEL_LAYERS["default"]["BACKEND"]

    async def scenario():
        communicator = _communicator(user)
        connected, _ = await communicator.connect()
        assert connected
        await communicator.send_json_to({"type": "ping"})
        assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
        await get_channel_layer().group_send(
            f"feed.user.{user.pk}", {"type": "feed.update", "payload": {"items": [42]}}
        )
        message = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return message

    assert async_to_sync(scenario)() == {
        "type": "feed.update",
        "payload": {"items": [42]},
    }


@pytest.mark.integration
def test_open_tabs_are_counted_and_the_last_close_takes_the_count_away(user):
    from django.core.cache import cache

    from recommendations.selectors import TABS_KEY, feed_tabs_open_many

    key = TABS_KEY.format(user_id=user.pk)
    cache.delete(key)  # the cache outlives other tests' users of this id

    async def is_open() -> bool:
        opened = await sync_to_async(feed_tabs_open_many)(user_ids=[user.pk])
        return user.pk in opened

    async def scenario():
        first, second = _communicator(user), _communicator(user)
        states = [await is_open()]
        await first.connect()
        await second.connect()
        states.append(await is_open())
        await first.disconnect()
        states.append(await is_open())  # the other tab is still open
        await sync_to_async(cache.delete)(key)  # the count lapsed...
        await second.send_json_to({"type": "ping"})
        assert await second.receive_json_from(timeout=5) == {"type": "pong"}
        states.append(await is_open())  # ...and the tab's ping brought it back
        await second.disconnect()
        states.append(await is_open())
        return states

    assert async_to_sync(scenario)() == [False, True, True, True, False]


@pytest.mark.integration
def test_the_channel_layer_outwaits_its_own_blocking_pop():
    """redis-py 8 times reads out after 5 s by default, exactly channels_redis's
    BZPOPMIN wait: an idle socket could drop. The layer's connections wait
    longer than the pop."""
    from channels_redis.core import RedisChannelLayer

    pool = get_channel_layer().create_pool(0)
    assert pool.connection_kwargs["socket_timeout"] > RedisChannelLayer.brpop_timeout


def test_anonymous_sockets_are_refused():
    async def scenario():
        communicator = _communicator(AnonymousUser())
        connected, code = await communicator.connect()
        return connected, code

    assert async_to_sync(scenario)() == (False, 4401)


@pytest.mark.integration
def test_feed_push_waits_for_the_commit(user):
    def push_inside_a_transaction(communicator) -> bool:
        with transaction.atomic():
            feed_push(user_id=user.pk, payload={"items": [1]})
            return async_to_sync(communicator.receive_nothing)(timeout=0.5)

    async def scenario():
        communicator = _communicator(user)
        await communicator.connect()
        silent_before_commit = await sync_to_async(push_inside_a_transaction)(
            communicator
        )
        after_commit = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return silent_before_commit, after_commit

    silent, message = async_to_sync(scenario)()
    assert silent is True
    assert message == {"type": "feed.update", "payload": {"items": [1]}}


@pytest.mark.integration
def test_a_plan_change_reaches_the_open_tabs(user):
    """``billing.signals.entitlements_changed`` (sent after a webhook's
    commit) is pushed down the user's socket; the billing page reloads its
    plan panel on it."""
    from billing.signals import entitlements_changed

    def change_plan() -> bool:
        with transaction.atomic():
            entitlements_changed.send(
                sender=None, user_id=user.pk, plan="pro", state="active"
            )
        return True

    async def scenario():
        communicator = _communicator(user)
        await communicator.connect()
        await sync_to_async(change_plan)()
        message = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return message

    assert async_to_sync(scenario)() == {
        "type": "billing.update",
        "payload": {"plan": "pro", "state": "active"},
    }
