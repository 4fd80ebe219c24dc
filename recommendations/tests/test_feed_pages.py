"""Browser-free page tests: the signed-in home feed and the movie page rows,
with a REAL tiny bundle trained on synthetic data inside the test session
(see ``feed_fixtures.real_bundle``) and with a scripted engine."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest

from accounts.tests.factories import UserFactory
from catalog import selectors as catalog_selectors
from catalog.tests.factories import (
    CreditFactory,
    GenreFactory,
    MovieFactory,
    PersonFactory,
)
from learning import selectors as learning_selectors
from learning.models import Interaction
from recommendations import selectors
from recommendations.tests.feed_fixtures import (  # noqa: F401 (fixtures)
    ITEM_BASE,
    FakeEngine,
    _isolated_serving,
    fake_serving,
    give_history,
    install_runtime,
    make_catalog,
    real_bundle_fixture,
    real_catalog,
)

pytestmark = pytest.mark.django_db

ROW = re.compile(
    r'<section class="feed-row"[^>]*data-row="(?P<key>\w+)"[^>]*>\s*'
    r'<h2 id="row-\w+">(?P<title>[^<]*)</h2>(?P<body>.*?)</section>',
    re.S,
)
CARD = re.compile(r'data-movie-id="(\d+)"')
REASON = re.compile(r'<p class="meta">[^<]*?· ([^<]+)</p>')


def rows_of(html: str) -> dict[str, dict]:
    return {
        m["key"]: {
            "title": m["title"],
            "ids": [int(i) for i in CARD.findall(m["body"])],
            "reasons": REASON.findall(m["body"]),
            "body": m["body"],
        }
        for m in ROW.finditer(html)
    }


def rate(client, movie_id: int, stars: str = "4") -> None:
    response = client.post(
        f"/catalog/movies/{movie_id}/rate/",
        {"stars": stars, "idempotency_key": uuid.uuid4().hex},
    )
    assert response.status_code == 302


# ------------------------------------------------------------ anonymous
def test_anonymous_visitors_keep_the_landing_page(client):
    html = client.get("/").content.decode()
    assert "Create a free account" in html
    assert 'data-testid="feed"' not in html


# ------------------------------------------------------------ real bundle
@pytest.fixture
def real(real_bundle):
    install_runtime(real_bundle.root)
    return real_bundle


def test_a_warm_user_gets_every_row_from_the_real_engine(client, real):
    user = next(iter(real_catalog(real, real.train_users[:1]).values()))
    history = learning_selectors.user_history_ids(user_id=user.pk)
    client.force_login(user)
    html = client.get("/").content.decode()
    rows = rows_of(html)
    assert list(rows) == ["for_you", "because", "trending", "hidden_gems"]
    assert 'data-scorer="database"' not in html  # no row fell back to the database
    latest = f"Item {history[-1] - ITEM_BASE}"
    assert rows["because"]["title"] == f"Because you watched {latest}"
    for_you = rows["for_you"]
    assert len(for_you["ids"]) == 12
    assert not set(for_you["ids"]) & set(history)
    watched = {f"Item {i - ITEM_BASE}" for i in history}
    for reason in for_you["reasons"]:  # reasons name real history items
        named = reason.split(" watched ", 1)[-1]
        assert named in watched or reason == "Popular right now", reason
    shown = [i for row in rows.values() for i in row["ids"]]
    assert len(shown) == len(set(shown))  # no movie twice on the page
    head = catalog_selectors.head_ids()
    assert rows["hidden_gems"]["ids"]
    assert not set(rows["hidden_gems"]["ids"]) & head


def test_rating_a_movie_changes_the_next_page_load(client, real):
    user = next(iter(real_catalog(real, real.train_users[1:2]).values()))
    client.force_login(user)
    before = rows_of(client.get("/").content.decode())
    new_movie = before["for_you"]["ids"][0]
    rate(client, new_movie, "5")
    after = rows_of(client.get("/").content.decode())
    assert (
        after["because"]["title"] == f"Because you watched Item {new_movie - ITEM_BASE}"
    )
    assert new_movie not in after["for_you"]["ids"]
    assert after["for_you"]["ids"] != before["for_you"]["ids"]


def test_cold_start_then_rating_gives_a_personal_feed(client, real):
    real_catalog(real, [])  # the movies only
    user = UserFactory()
    client.force_login(user)
    cold = rows_of(client.get("/").content.decode())
    assert list(cold) == ["cold_start", "trending"]
    assert 'data-testid="rate-prompt"' in cold["cold_start"]["body"]
    assert len(cold["cold_start"]["ids"]) == 12
    for movie_id in cold["cold_start"]["ids"][:3]:
        rate(client, movie_id)
    warm = rows_of(client.get("/").content.decode())
    assert list(warm) == ["for_you", "because", "trending", "hidden_gems"]
    assert "rate-prompt" not in "".join(r["body"] for r in warm.values())
    assert not set(warm["for_you"]["ids"]) & set(cold["cold_start"]["ids"][:3])


def test_the_movie_page_rows_from_the_real_engine(client, real):
    real_catalog(real, [])
    movie_id = ITEM_BASE + 5
    page = client.get(f"/catalog/movies/{movie_id}/").content.decode()
    assert f'hx-get="/recommendations/movies/{movie_id}/rows/"' in page
    rows = rows_of(
        client.get(f"/recommendations/movies/{movie_id}/rows/").content.decode()
    )
    assert rows["similar"]["title"] == "More like this"
    assert len(rows["similar"]["ids"]) == 12 and movie_id not in rows["similar"]["ids"]
    assert all(r == "Similar to Item 5" for r in rows["similar"]["reasons"])


# ------------------------------------------------------------ scripted engine
@pytest.fixture
def catalog():
    return make_catalog()


def test_cold_start_row_spreads_over_genres(client, tmp_path):
    """The ten most popular films are dramas; the cold-start row still opens
    with one film of each genre, each the most popular of its genre."""
    drama, comedy, scifi = (GenreFactory(name=n) for n in ("Drama", "Comedy", "SF"))
    movies = [
        MovieFactory(title=f"F{k}", genres=[drama if k < 10 else
                                            comedy if k < 15 else scifi])
        for k in range(20)
    ]  # fmt: skip
    order = [m.pk for m in movies]
    fake_serving(tmp_path, FakeEngine(order))
    client.force_login(UserFactory())
    ids = rows_of(client.get("/").content.decode())["cold_start"]["ids"]
    assert ids[:3] == [order[0], order[10], order[15]]
    assert ids[3:] == order[1:10]  # then popularity order


def test_director_and_collection_rows_on_the_movie_page(client, tmp_path, catalog):
    fake_serving(tmp_path, FakeEngine([m.pk for m in catalog[10:]]))
    rows = rows_of(
        client.get(f"/recommendations/movies/{catalog[0].pk}/rows/").content.decode()
    )
    assert list(rows) == ["similar", "director"]
    assert rows["director"]["title"] == "From the same director: Ann Director"
    assert rows["director"]["ids"][:3] == [m.pk for m in catalog[10:13]]


def test_the_fallback_movie_rows_read_director_and_collection(client, tmp_path,
                                                              catalog):  # fmt: skip
    install_runtime(tmp_path / "none")
    director = PersonFactory(name="Jane Doe")
    for movie in (catalog[0], catalog[9]):
        CreditFactory(movie=movie, person=director, role="director")
    rows = rows_of(
        client.get(f"/recommendations/movies/{catalog[0].pk}/rows/").content.decode()
    )
    assert rows["director"]["ids"] == [catalog[9].pk]


def test_movie_rows_of_an_unknown_movie_are_404(client):
    assert client.get("/recommendations/movies/999999/rows/").status_code == 404


def test_the_home_feed_costs_a_bounded_number_of_queries(
    client, tmp_path, catalog, django_assert_max_num_queries
):
    fake_serving(tmp_path, FakeEngine([m.pk for m in reversed(catalog)]))
    user = UserFactory()
    give_history(user, catalog[:6])
    client.force_login(user)
    client.get("/")  # warm the runtime, trending and head caches
    with django_assert_max_num_queries(8):
        rows = rows_of(client.get("/").content.decode())
    assert len(rows) == 4


# ------------------------------------------------------------ selectors
def test_history_is_what_training_uses_oldest_first_each_movie_once(catalog):
    user = UserFactory()
    give_history(user, [catalog[3], catalog[1], catalog[3]])
    give_history(user, [catalog[5]], kind=Interaction.Kind.WATCHLIST)
    give_history(user, [catalog[7]], kind=Interaction.Kind.CLICK,
                 start=datetime(2026, 2, 1, tzinfo=UTC))  # fmt: skip
    assert learning_selectors.user_history_ids(user_id=user.pk) == [
        catalog[3].pk,
        catalog[1].pk,
        catalog[7].pk,
    ]


def test_the_history_sql_matches_its_queryset_with_ties_and_a_limit(catalog):
    user = UserFactory()
    same_time = datetime(2026, 3, 1, tzinfo=UTC)
    for k, movie in enumerate(catalog[:6]):  # equal timestamps: the id decides
        Interaction.objects.create(
            user=user, movie=movie, kind=Interaction.Kind.CLICK,
            occurred_at=same_time, source="test", idempotency_key=f"tie:{k}",
        )  # fmt: skip
    give_history(user, catalog[6:9], kind=Interaction.Kind.WATCHLIST)
    give_history(UserFactory(), catalog[9:12])  # another user's events
    queryset = list(
        Interaction.objects.filter(
            kind__in=learning_selectors.POSITIVE_KINDS, user_id=user.pk
        )
        .order_by("-occurred_at", "-id")
        .values_list("movie_id", flat=True)[:4]
    )
    assert (
        learning_selectors.user_history_ids(user_id=user.pk, limit=4) == queryset[::-1]
    )
    assert len(queryset) == 4


def test_trending_counts_the_logs_last_days(catalog):
    user = UserFactory()
    old = datetime(2020, 1, 1, tzinfo=UTC)
    give_history(user, catalog[:3], start=old)  # outside the window
    recent = datetime(2026, 1, 1, tzinfo=UTC)
    for other in (UserFactory(), UserFactory()):
        give_history(other, [catalog[50]], start=recent)
    give_history(UserFactory(), [catalog[60]], start=recent)
    ids = selectors.trending_ids(n=5)
    assert ids[:2] == [catalog[50].pk, catalog[60].pk]
    assert ids[2:] == [catalog[0].pk, catalog[1].pk, catalog[2].pk]  # popular fill


def test_the_long_tail_is_outside_the_top_fifth(catalog):
    head = catalog_selectors.head_ids()
    assert head == {m.pk for m in catalog[:16]}  # 20 % of 80 by rating_count
    tail = catalog_selectors.long_tail_ids(n=10)
    assert len(tail) == 10 and not set(tail) & head


def test_feed_refresh_sends_the_fresh_feed_to_the_users_group(
    tmp_path, catalog, django_capture_on_commit_callbacks
):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from recommendations.services import feed_group_name, feed_refresh

    fake_serving(tmp_path, FakeEngine([m.pk for m in reversed(catalog)]))
    user = UserFactory()
    give_history(user, catalog[:2])
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(feed_group_name(user.pk), channel)
    with django_capture_on_commit_callbacks(execute=True):
        payload = feed_refresh(user_id=user.pk, n=3)
    message = async_to_sync(layer.receive)(channel)
    assert message == {"type": "feed.update", "payload": payload}
    assert [i["id"] for i in payload["items"]] == [m.pk for m in catalog[::-1][:3]]
    assert payload["meta"]["fallback"] is False


def _open_tab(request, user) -> None:
    """As a feed socket's connect does; closed again after the test."""
    from recommendations import services

    services.feed_tab_opened(user_id=user.pk)
    request.addfinalizer(lambda: services.feed_tab_closed(user_id=user.pk))


def test_rating_a_movie_pushes_a_fresh_feed_to_open_tabs(
    monkeypatch, request, user, django_capture_on_commit_callbacks
) -> None:
    """learning announces the rating after commit; the recommendations
    receiver enqueues ``feed_refresh`` (in-process here: no worker) when the
    user has a feed tab open, and only then."""
    from catalog import services as catalog_services
    from catalog.models import Movie
    from recommendations import services as recommendation_services

    sent: list[dict] = []
    monkeypatch.setattr(
        recommendation_services,
        "feed_push",
        lambda *, user_id, payload: sent.append({"user": user_id, **payload}),
    )
    movie = Movie.objects.create(title="A film", year=1999)
    other = Movie.objects.create(title="Another film", year=2001)
    with django_capture_on_commit_callbacks(execute=True):
        catalog_services.movie_rate(user=user, movie_id=other.pk, stars=5.0)
    assert sent == []  # no tab open: no feed computed for nobody to see
    _open_tab(request, user)
    with django_capture_on_commit_callbacks(execute=True):
        catalog_services.movie_rate(user=user, movie_id=movie.pk, stars=4.0)
    assert len(sent) == 1 and sent[0]["user"] == user.pk
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            catalog_services.movie_rate(
                user=user, movie_id=movie.pk, stars=4.0, idempotency_key="same"
            )
    assert len(sent) == 2  # a replayed event is not pushed twice
    with django_capture_on_commit_callbacks(execute=True):
        catalog_services.movie_watchlist_set(user=user, movie_id=movie.pk, on=True)
    assert len(sent) == 2  # a watchlist toggle changes nothing served


def test_a_rolled_back_rating_is_never_announced(
    monkeypatch, request, user, django_capture_on_commit_callbacks
) -> None:
    from django.db import transaction

    from catalog import services as catalog_services
    from catalog.models import Movie

    _open_tab(request, user)

    calls: list[int] = []
    monkeypatch.setattr(
        "recommendations.tasks.feed_refresh.delay",
        lambda user_id, event_id=None: calls.append(user_id),
    )
    movie = Movie.objects.create(title="A film", year=1999)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                catalog_services.movie_rate(user=user, movie_id=movie.pk, stars=3.0)
                raise RuntimeError("the request failed after the write")
        except RuntimeError:
            pass
    assert callbacks == [] and calls == []
    with django_capture_on_commit_callbacks(execute=True):
        catalog_services.movie_rate(user=user, movie_id=movie.pk, stars=3.0)
    assert calls == [user.pk]


def test_the_rating_request_does_not_compute_the_feed(
    monkeypatch, user, django_capture_on_commit_callbacks
) -> None:
    """The feed is refreshed by the task, after the response's transaction."""
    from catalog import services as catalog_services
    from catalog.models import Movie
    from recommendations import selectors as feed_selectors

    def no_feed(**_kwargs):
        raise AssertionError("the rating path computed a feed")

    monkeypatch.setattr(feed_selectors, "feed_for", no_feed)
    monkeypatch.setattr("recommendations.tasks.feed_refresh.delay", lambda *_args: None)
    movie = Movie.objects.create(title="A film", year=1999)
    with django_capture_on_commit_callbacks(execute=True):
        row = catalog_services.movie_rate(user=user, movie_id=movie.pk, stars=5.0)
    assert row.value == 5.0


def test_a_waiting_refresh_covers_events_announced_out_of_order(
    monkeypatch, request, user, django_capture_on_commit_callbacks
) -> None:
    """Two learners may announce a user's batches out of order. The refresh
    that waits when the second announcement arrives names the newest event
    all the same (its cause is read when it runs, not carried by the
    claim); an announcement after it ran enqueues the next one."""
    from catalog.models import Movie
    from learning import coordinator
    from learning import services as learning_services
    from learning.services import EventInput
    from recommendations import receivers, tasks
    from recommendations import services as recommendation_services

    _open_tab(request, user)
    queued: list[tuple[int, int | None]] = []
    monkeypatch.setattr(
        tasks.feed_refresh, "delay", lambda u, e=None: queued.append((u, e))
    )
    sent: list[dict] = []
    monkeypatch.setattr(
        recommendation_services,
        "feed_push",
        lambda *, user_id, payload: sent.append(payload),
    )
    movies = [Movie.objects.create(title=f"Film {i}", year=2000) for i in range(4)]
    with django_capture_on_commit_callbacks(execute=False):
        recorded = learning_services.events_record(
            user_id=user.pk,
            events=[EventInput(kind="click", movie_id=m.pk) for m in movies[:3]],
        )
    first, second, third = (e.event_id for e in recorded)
    with django_capture_on_commit_callbacks(execute=False):
        coordinator._apply([first, second, third])

    def announce(event_id: int) -> None:
        receivers.on_events_applied(
            users={user.pk: {"event_id": event_id, "positive": True}},
            event_ids=[event_id],
        )

    announce(first)
    announce(third)  # the other learner's later batch, announced first
    announce(second)
    assert queued == [(user.pk, first)]  # one refresh waits
    tasks.feed_refresh(*queued[0])
    assert sent[-1]["cause"]["event_id"] == third
    assert sent[-1]["cause"]["note"] == "Updated after you opened Film 2"

    with django_capture_on_commit_callbacks(execute=False):
        (fourth,) = learning_services.events_record(
            user_id=user.pk, events=[EventInput(kind="click", movie_id=movies[3].pk)]
        )
        coordinator._apply([fourth.event_id])
    announce(fourth.event_id)  # after the refresh ran: a new one
    assert queued[-1] == (user.pk, fourth.event_id)
    tasks.feed_refresh(*queued[-1])
    assert sent[-1]["cause"]["event_id"] == fourth.event_id
