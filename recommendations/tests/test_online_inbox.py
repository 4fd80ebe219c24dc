"""Applied batches reach the online KAN through its inbox: one task per
burst, every id once, oldest first - on Redis and in process."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from recommendations import online, online_inbox, receivers, services, tasks

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


@pytest.fixture(params=["redis", "in-process"])
def inbox_kind(request, settings):
    if request.param == "in-process":
        settings.REDIS_URL = None
    online_inbox.reset_online_inboxes()
    inbox = online_inbox.get_online_inbox()
    while inbox.take(1000):  # the suite's Redis outlives other tests
        pass
    cache.delete(services.ONLINE_KICK_KEY)
    yield request.param
    online_inbox.reset_online_inboxes()


def test_a_burst_of_batches_makes_one_learning_task(inbox_kind, settings, monkeypatch):
    settings.APEX_ONLINE_LEARNING = True
    kicks: list[dict] = []
    monkeypatch.setattr(tasks.online_learn, "apply_async", lambda **k: kicks.append(k))
    learned: list[list[int]] = []
    monkeypatch.setattr(
        online,
        "online_learn",
        lambda *, event_ids: learned.append(event_ids) or {"events": len(event_ids)},
    )
    for batch in ([1, 2], [3], [4, 5, 6]):
        receivers.on_events_applied(users={}, event_ids=batch)
    assert kicks == [{"countdown": services.ONLINE_GATHER_S}]  # one for all three
    assert tasks.online_learn() == {"passes": 1, "events": 6}
    assert learned == [[1, 2, 3, 4, 5, 6]]
    receivers.on_events_applied(users={}, event_ids=[7])  # after it took them
    assert len(kicks) == 2
    assert tasks.online_learn() == {"passes": 1, "events": 1}
    assert tasks.online_learn(event_ids=[8]) == {"events": 1}  # an older message
    assert learned[-2:] == [[7], [8]]


def test_a_large_backlog_is_learned_in_passes(inbox_kind, monkeypatch):
    monkeypatch.setattr(services, "ONLINE_TAKE", 4)
    learned: list[list[int]] = []
    monkeypatch.setattr(
        online,
        "online_learn",
        lambda *, event_ids: learned.append(event_ids) or {"events": len(event_ids)},
    )
    online_inbox.get_online_inbox().push(list(range(1, 11)))
    assert services.online_learn_pending() == {"passes": 3, "events": 10}
    assert learned == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
