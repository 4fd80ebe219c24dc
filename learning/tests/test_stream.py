"""The event stream and the coordinator against a real Redis of their own:
the outbox catch-up after Redis was down, re-claiming what a killed consumer
left pending, the dead-letter path; and the embedded mode end to end."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from catalog.tests.factories import GenreFactory, MovieFactory
from learning import coordinator, services
from learning.models import AppliedEvent, DeadLetter, ExportWatermark, UserProfile
from learning.services import EventInput
from learning.stream import (
    DEAD_LETTERS,
    GROUP,
    STREAM,
    InProcessEventStream,
    RedisEventStream,
    get_event_stream,
    reset_event_streams,
)
from scripts.servers import free_port, redis_start, redis_stop

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


@pytest.fixture
def own_redis(settings):
    """A Redis of this test's own, as the event stream's (cache, broker and
    channel layer stay on the suite's Redis)."""
    folder = Path(tempfile.mkdtemp(prefix="apex-stream-"))
    port = free_port()
    url = redis_start(folder, port=port)
    settings.REDIS_URL = url
    reset_event_streams()
    try:
        yield folder, port, url
    finally:
        reset_event_streams()
        redis_stop(folder)


@pytest.fixture
def movies():
    genre = GenreFactory(name="Drama")
    return [MovieFactory(genres=[genre]) for _ in range(3)]


def record(user, movies, capture, **kinds):
    with capture(execute=True):
        return services.events_record(
            user_id=user.pk,
            events=[EventInput(kind="click", movie_id=m.pk) for m in movies],
        )


def test_events_accepted_while_redis_is_down_are_published_later(
    own_redis, user, movies, django_capture_on_commit_callbacks
):
    folder, port, _url = own_redis
    redis_stop(folder)
    recorded = record(user, movies, django_capture_on_commit_callbacks)
    ids = {r.event_id for r in recorded}
    assert len(ids) == 3  # durable: in the log although nothing was published
    assert not AppliedEvent.objects.filter(event_id__in=ids).exists()

    redis_start(folder, port=port)
    reset_event_streams()
    with django_capture_on_commit_callbacks(execute=True):
        result = services.events_republish(grace=timedelta(0))
    assert result["published"] == 3
    assert set(AppliedEvent.objects.values_list("event_id", flat=True)) == ids
    # applied: not published again; the watermark passes them once settled
    again = services.events_republish(grace=timedelta(0), horizon=timedelta(0))
    assert again["published"] == 0
    assert ExportWatermark.objects.get(name=services.OUTBOX).last_event_id == max(ids)
    get_event_stream().publish(sorted(ids))
    again = coordinator.events_drain()
    assert again.applied == 0 and again.duplicates == 3
    assert UserProfile.objects.get(user=user).events_applied == 3


def test_a_killed_consumers_entries_are_reclaimed(
    own_redis, settings, monkeypatch, user, movies, django_capture_on_commit_callbacks
):
    _folder, _port, url = own_redis
    monkeypatch.setattr(services, "events_drain_enqueue", lambda: None)
    ids = {r.event_id for r in record(user, movies, django_capture_on_commit_callbacks)}
    doomed = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time, redis
            r = redis.Redis.from_url({url!r})
            try:
                r.xgroup_create({STREAM!r}, {GROUP!r}, id="0", mkstream=True)
            except redis.ResponseError:
                pass
            got = r.xreadgroup({GROUP!r}, "doomed", {{{STREAM!r}: ">"}}, count=100)
            print(len(got[0][1]), flush=True)
            time.sleep(600)  # never acknowledges
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert doomed.stdout.readline().strip() == "3"  # it took all three
    finally:
        doomed.kill()  # kill -9 mid-batch
        doomed.wait()
    stream = get_event_stream()
    assert stream.backlog()["pending"] == 3
    assert coordinator.events_drain(consumer="survivor").applied == 0  # not idle yet
    settings.APEX_EVENTS_CLAIM_IDLE_MS = 0
    result = coordinator.events_drain(consumer="survivor")
    assert result.applied == 3
    assert set(AppliedEvent.objects.values_list("event_id", flat=True)) == ids
    assert stream.backlog()["pending"] == 0


def test_an_event_that_keeps_failing_is_dead_lettered(
    own_redis, settings, monkeypatch, user, movies, django_capture_on_commit_callbacks
):
    settings.APEX_EVENTS_CLAIM_IDLE_MS = 0
    monkeypatch.setattr(services, "events_drain_enqueue", lambda: None)
    poison = movies[1]
    real = coordinator._update_items

    def update_items(rows):
        if any(r["movie_id"] == poison.pk for r in rows):
            raise RuntimeError("poison")
        real(rows)

    monkeypatch.setattr(coordinator, "_update_items", update_items)
    recorded = record(user, movies, django_capture_on_commit_callbacks)
    poisoned = recorded[1].event_id
    result = coordinator.events_drain(time_budget_s=10)
    assert result.applied == 2 and result.dead_lettered == 1
    letter = DeadLetter.objects.get()
    assert letter.event_id == poisoned and letter.deliveries == 5
    assert "poison" in letter.error
    assert not AppliedEvent.objects.filter(event_id=poisoned).exists()
    stream = get_event_stream()
    assert isinstance(stream, RedisEventStream)
    assert stream.redis.xlen(DEAD_LETTERS) == 1
    assert stream.backlog()["pending"] == 0


@pytest.mark.django_db(transaction=True)
def test_the_embedded_mode_end_to_end(settings, api_client, user, movies):
    """No Redis: the in-process stream, tasks in-process, the in-memory
    channel layer — an API event reaches the open socket with its cause."""
    settings.REDIS_URL = None
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    }
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    }
    reset_event_streams()
    from recommendations.consumers import FeedConsumer

    api_client.force_authenticate(user)

    def post_event():
        return api_client.post(
            "/v1/events",
            {"kind": "rating", "movie_id": movies[0].pk, "value": 4},
            format="json",
        )

    async def scenario():
        communicator = WebsocketCommunicator(FeedConsumer.as_asgi(), "/ws/feed/")
        communicator.scope["user"] = user
        connected, _ = await communicator.connect()
        assert connected
        response = await sync_to_async(post_event)()
        message = await communicator.receive_json_from(timeout=10)
        await communicator.disconnect()
        return response, message

    try:
        response, message = async_to_sync(scenario)()
        assert response.status_code == 202
        assert isinstance(get_event_stream(), InProcessEventStream)
    finally:
        reset_event_streams()
    assert message["type"] == "feed.update"
    cause = message["payload"]["cause"]
    assert cause["movie_id"] == movies[0].pk
    assert cause["note"] == f"Updated after you rated {movies[0].title}"
    assert UserProfile.objects.get(user=user).events_applied == 1


def test_the_outbox_never_steps_over_a_late_committed_event(
    own_redis, monkeypatch, user, movies, django_capture_on_commit_callbacks
):
    """Ids are not committed in id order: an event with a smaller id that is
    still too fresh for the catch-up must be published by a later one."""
    from django.utils import timezone

    from learning.models import Interaction

    folder, port, _url = own_redis
    redis_stop(folder)  # nothing is published after commit
    first, second = record(user, movies[:2], django_capture_on_commit_callbacks)
    now = timezone.now()
    Interaction.objects.filter(pk=first.event_id).update(
        created_at=now - timedelta(seconds=29)
    )
    Interaction.objects.filter(pk=second.event_id).update(
        created_at=now - timedelta(seconds=31)
    )
    redis_start(folder, port=port)
    reset_event_streams()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.events_republish()["published"] == 1  # the older one
    Interaction.objects.filter(pk=first.event_id).update(
        created_at=now - timedelta(seconds=31)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert services.events_republish()["published"] == 1
    assert set(AppliedEvent.objects.values_list("event_id", flat=True)) == {
        first.event_id,
        second.event_id,
    }


def test_a_redis_outage_after_commit_never_fails_the_request(
    monkeypatch, user, movies, django_capture_on_commit_callbacks
):
    """The rows are committed when the after-commit work runs: its failures
    are logged, the caller still gets its events."""

    def broken(**_kwargs):
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(services, "events_publish", broken)
    recorded = record(user, movies, django_capture_on_commit_callbacks)
    assert len(recorded) == 3


def test_a_batch_updates_the_feature_tables_once_per_event(
    user, movies, django_capture_on_commit_callbacks
):
    """Counts add up across batches (upserts, not overwrites), transitions
    follow the user's positive events in order, and a second delivery of
    the same events changes nothing."""
    from learning.models import ItemActivity, ItemTransition

    a, b, _c = movies
    with django_capture_on_commit_callbacks(execute=False):
        first = services.events_record(
            user_id=user.pk,
            events=[EventInput(kind="click", movie_id=m.pk) for m in (a, b)],
        )
        second = services.events_record(
            user_id=user.pk,
            events=[EventInput(kind="click", movie_id=m.pk) for m in (a, b)],
        )
    ids = [e.event_id for e in (*first, *second)]
    assert set(coordinator._apply(ids[:2])) == set(ids[:2])
    assert set(coordinator._apply(ids)) == set(ids[2:])  # the first two again
    assert coordinator._apply(ids) == {}
    pairs = dict(
        ((t.from_movie_id, t.to_movie_id), t.count)
        for t in ItemTransition.objects.all()
    )
    assert pairs == {(a.pk, b.pk): 2, (b.pk, a.pk): 1}
    activity = {i.movie_id: i for i in ItemActivity.objects.all()}
    assert {m: i.events for m, i in activity.items()} == {a.pk: 2, b.pk: 2}
    assert activity[a.pk].recent == pytest.approx(2.0, rel=1e-3)
    profile = UserProfile.objects.get(user=user)
    assert profile.events_applied == 4 and profile.session_events == 4
    assert [e[0] for e in profile.recent] == ids[::-1]
    assert profile.genre_affinity == {"Drama": pytest.approx(4.0, rel=1e-3)}
    assert AppliedEvent.objects.count() == 4


def test_a_coordinator_behind_lingers_for_a_fuller_batch(settings, monkeypatch):
    """Entries already waiting at a read mean the coordinator is behind: it
    waits ``APEX_EVENTS_LINGER_MS`` and tops the batch up before applying;
    a read that had to wait is applied at once."""
    import time as time_module

    from learning.stream import StreamEntry

    settings.APEX_EVENTS_LINGER_MS = 30
    settings.APEX_EVENTS_CLAIM_IDLE_MS = 60_000
    arrivals = [[1], [2, 3], [4], []]  # what each read finds

    class Stream:
        def __init__(self):
            self.reads = []

        def claim_stale(self, **_kwargs):
            return []

        def read(self, *, consumer, count, block_ms):
            self.reads.append((time_module.monotonic(), block_ms))
            found = arrivals.pop(0) if arrivals else []
            if block_ms and found == [4]:
                time_module.sleep(0.01)  # this one had to wait for its event
            return [StreamEntry(f"0-{i}", i, 1) for i in found]

        def ack(self, entry_ids):
            pass

    batches: list[list[int]] = []
    monkeypatch.setattr(
        coordinator,
        "_process",
        lambda stream, entries, result: batches.append([e.event_id for e in entries]),
    )
    stream = Stream()
    coordinator.events_drain(stream=stream, consumer="c", time_budget_s=5)
    assert batches == [[1, 2, 3], [4]]
    (t0, _), (t1, linger_block), *_ = stream.reads
    assert t1 - t0 >= 0.03 and linger_block == 0  # waited, then a quick read


@pytest.mark.parametrize("kind", ["redis", "in_process"])
def test_the_wake_flag_enqueues_one_drain_until_a_drain_lowers_it(kind, request):
    """A publish raises the wake flag in its own round trip: only the first
    publisher enqueues a drain; the drain lowers the flag before it reads, so
    the next publish enqueues the next drain."""
    if kind == "redis":
        request.getfixturevalue("own_redis")
        stream = get_event_stream()
        assert isinstance(stream, RedisEventStream)
    else:
        stream = InProcessEventStream()
    assert stream.publish([1]) is True
    assert stream.publish([2, 3]) is False  # a drain is already enqueued
    stream.wake_lower()
    assert stream.publish([4]) is True
    got = stream.read(consumer="c", count=10, block_ms=0)
    assert [e.event_id for e in got] == [1, 2, 3, 4]


def test_a_publish_enqueues_a_drain_only_when_none_waits(
    own_redis, monkeypatch, user, movies, django_capture_on_commit_callbacks
):
    enqueued = []
    monkeypatch.setattr(services, "events_drain_enqueue", lambda: enqueued.append(1))
    record(user, movies, django_capture_on_commit_callbacks)
    record(user, movies, django_capture_on_commit_callbacks)
    assert len(enqueued) == 1
    get_event_stream().wake_lower()  # what learning.drain_events does first
    record(user, movies, django_capture_on_commit_callbacks)
    assert len(enqueued) == 2


def test_postgresql_keeps_recent_in_sql_with_the_python_result(
    monkeypatch, movies, django_capture_on_commit_callbacks
):
    """On PostgreSQL the database prepends to ``recent``, trims it and finds
    the previous positive movie; the Python path (other databases) must give
    every profile field and transition the same: the same events for two
    users, one applied each way, over several batches (a watchlist event
    between positives; ``recent`` overflowing its bound)."""
    from accounts.tests.factories import UserFactory
    from learning.models import Interaction, ItemTransition

    monkeypatch.setattr(coordinator, "RECENT_EVENTS", 5)
    a, b, c = (m.pk for m in movies)
    script = [
        [("click", a), ("rating", b, 4.0)],
        [("watchlist", c, 1.0), ("click", c)],
        [("watch", a, 0.5), ("click", b), ("click", b)],
        [("rating", c, 2.0)],
    ]
    results = {}
    for in_sql in (True, False):
        monkeypatch.setattr(coordinator, "_recent_in_sql", lambda v=in_sql: v)
        user = UserFactory()
        ItemTransition.objects.all().delete()
        for batch in script:
            with django_capture_on_commit_callbacks(execute=False):
                recorded = services.events_record(
                    user_id=user.pk,
                    events=[
                        EventInput(kind=k, movie_id=m, value=(v[0] if v else None))
                        for k, m, *v in batch
                    ],
                )
            coordinator._apply([r.event_id for r in recorded])
        profile = UserProfile.objects.get(user=user)
        ids = list(
            Interaction.objects.filter(user=user)
            .order_by("id")
            .values_list("id", flat=True)
        )
        order = {event_id: n for n, event_id in enumerate(ids)}
        results[in_sql] = {
            # the event ids differ between the users: compare their order
            "recent": [[order[e[0]], *e[1:3]] for e in profile.recent],
            "counts": [
                profile.events_applied,
                profile.session_number,
                profile.session_events,
            ],
            "affinity": {k: round(v, 4) for k, v in profile.genre_affinity.items()},
            "transitions": sorted(
                ItemTransition.objects.values_list(
                    "from_movie_id", "to_movie_id", "count"
                )
            ),
        }
    assert results[True] == results[False]
    assert len(results[True]["recent"]) == 5
    assert [e[0] for e in results[True]["recent"]] == [7, 6, 5, 4, 3]
    # positives a, b, (watchlist c), c, a, b, b, c: b -> b is no transition
    assert results[True]["transitions"] == sorted([(a, b, 2), (b, c, 2), (c, a, 1)])


@pytest.mark.parametrize("same_redis", [True, False])
def test_recording_drops_the_cached_history(
    same_redis, request, monkeypatch, user, movies, django_capture_on_commit_callbacks
):
    """The cached history goes in the publish's round trip when the cache is
    the stream's Redis, by ``history_forget`` when it is another server."""
    from django.core.cache import cache

    from learning import selectors

    if not same_redis:
        request.getfixturevalue("own_redis")  # the stream on a Redis of its own
    monkeypatch.setattr(services, "events_drain_enqueue", lambda: None)
    assert (services._history_keys_on_stream([user.pk]) is not None) == same_redis
    cache.set(selectors.history_cache_key(user.pk), [1, 2, 3], 60)
    record(user, movies, django_capture_on_commit_callbacks)
    assert cache.get(selectors.history_cache_key(user.pk)) is None
