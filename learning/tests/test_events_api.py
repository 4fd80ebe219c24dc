"""``POST /v1/events`` and ``GET /v1/events/features``: validation, all or
nothing, idempotency, what a 202 means, and whose profile one may read.

Tasks run in-process here (the test settings' eager Celery) on the test
Redis stream; ``django_capture_on_commit_callbacks`` plays the commit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import api_key_create
from accounts.tests.factories import UserFactory
from catalog.tests.factories import GenreFactory, MovieFactory
from learning.models import AppliedEvent, Interaction, UserProfile

pytestmark = pytest.mark.django_db
LONG = "k" * 101


@pytest.fixture
def movies():
    drama = GenreFactory(name="Drama")
    comedy = GenreFactory(name="Comedy")
    return [
        MovieFactory(genres=[drama]),
        MovieFactory(genres=[drama, comedy]),
        MovieFactory(genres=[comedy]),
    ]


@pytest.fixture
def alice_client(api_client, user):
    api_client.force_authenticate(user)
    return api_client


def post(client, body, capture):
    with capture(execute=True):
        return client.post("/v1/events", body, format="json")


# ------------------------------------------------------------------ accepted
def test_one_event_is_durable_before_the_202(
    alice_client, user, movies, django_capture_on_commit_callbacks
):
    response = post(
        alice_client,
        {"kind": "rating", "movie_id": movies[0].pk, "value": 4.5,
         "request_id": "req-1"},
        django_capture_on_commit_callbacks,
    )  # fmt: skip
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["accepted"] == 1 and body["created"] == 1
    row = Interaction.objects.get(pk=body["events"][0]["id"])
    assert (row.user_id, row.movie_id, row.kind, row.value) == (
        user.pk, movies[0].pk, "rating", 4.5,
    )  # fmt: skip
    assert row.source == "api" and row.request_id == "req-1"
    assert AppliedEvent.objects.filter(event_id=row.pk).exists()  # the learner ran


def test_a_batch_keeps_the_request_order(
    alice_client, movies, django_capture_on_commit_callbacks
):
    events = [
        {"kind": "click", "movie_id": movies[2].pk},
        {"kind": "watch", "movie_id": movies[1].pk, "value": 0.8},
        {"kind": "watchlist", "movie_id": movies[0].pk, "value": 1},
    ]
    response = post(
        alice_client, {"events": events}, django_capture_on_commit_callbacks
    )
    assert response.status_code == 202
    ids = [e["id"] for e in response.json()["events"]]
    kinds = dict(Interaction.objects.filter(pk__in=ids).values_list("pk", "kind"))
    assert [kinds[i] for i in ids] == ["click", "watch", "watchlist"]


def test_the_same_idempotency_key_makes_one_row_and_one_update(
    alice_client, user, movies, django_capture_on_commit_callbacks
):
    event = {"kind": "click", "movie_id": movies[0].pk, "idempotency_key": "k-1"}
    first = post(alice_client, event, django_capture_on_commit_callbacks).json()
    again = post(
        alice_client, {"events": [event, event]}, django_capture_on_commit_callbacks
    ).json()
    assert first["events"][0]["created"] is True
    assert again["created"] == 0
    assert {e["id"] for e in again["events"]} == {first["events"][0]["id"]}
    assert Interaction.objects.filter(user=user).count() == 1
    assert UserProfile.objects.get(user=user).events_applied == 1


def test_idempotency_keys_belong_to_their_user(
    api_client, movies, django_capture_on_commit_callbacks
):
    alice, bob = UserFactory(), UserFactory()
    event = {"kind": "click", "movie_id": movies[0].pk, "idempotency_key": "same"}
    api_client.force_authenticate(alice)
    a = post(api_client, event, django_capture_on_commit_callbacks).json()
    api_client.force_authenticate(bob)
    b = post(api_client, event, django_capture_on_commit_callbacks).json()
    assert a["events"][0]["id"] != b["events"][0]["id"]
    assert b["events"][0]["created"] is True


def test_an_api_key_may_post_events(
    api_client, user, movies, django_capture_on_commit_callbacks
):
    _key, raw = api_key_create(user=user, name="ingest")
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            "/v1/events",
            {"kind": "click", "movie_id": movies[0].pk},
            format="json",
            HTTP_AUTHORIZATION=f"Api-Key {raw}",
        )
    assert response.status_code == 202


def test_anonymous_callers_are_refused(api_client, movies):
    response = api_client.post(
        "/v1/events", {"kind": "click", "movie_id": movies[0].pk}, format="json"
    )
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


# ------------------------------------------------------------------ rejected
@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"kind": "like", "movie_id": "M"}, "kind"),
        ({"kind": "rating", "value": 4}, "movie_id"),
        ({"kind": "rating", "movie_id": "M", "value": 4.25}, "value"),
        ({"kind": "rating", "movie_id": "M", "value": 6}, "value"),
        ({"kind": "rating", "movie_id": "M"}, "value"),
        ({"kind": "watchlist", "movie_id": "M", "value": 0.5}, "value"),
        ({"kind": "watch", "movie_id": "M", "value": 1.5}, "value"),
        ({"kind": "click", "movie_id": "M", "value": 1}, "value"),
        ({"kind": "click", "movie_id": 999_999}, "movie_id"),
        ({"kind": "click", "movie_id": "M", "occurred_at": "FUTURE"}, "occurred_at"),
        ({"kind": "click", "movie_id": "M", "occurred_at": "OLD"}, "occurred_at"),
        ({"kind": "click", "movie_id": "M", "occurred_at": "yesterday"}, "occurred_at"),
        ({"kind": "click", "movie_id": "M", "idempotency_key": LONG}, "idempotency_key"),  # noqa: E501
        ({"kind": "click", "movie_id": "M", "request_id": "r" * 65}, "request_id"),
    ],
)  # fmt: skip
def test_each_invalid_field_is_named_and_nothing_is_written(
    alice_client, movies, event, field, django_capture_on_commit_callbacks
):
    now = timezone.now()
    replace = {
        "M": movies[0].pk,
        "FUTURE": (now + timedelta(minutes=6)).isoformat(),
        "OLD": (now - timedelta(days=31)).isoformat(),
    }
    event = {
        k: replace.get(v, v) if isinstance(v, str) else v for k, v in event.items()
    }
    good = {"kind": "click", "movie_id": movies[1].pk}
    response = post(
        alice_client,
        {"events": [good, event, good]},
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert list(body["detail"]["events"]) == ["1"]
    assert field in body["detail"]["events"]["1"]
    assert not Interaction.objects.exists()


def test_every_bad_event_of_a_batch_is_reported(
    alice_client, movies, django_capture_on_commit_callbacks
):
    events = [
        {"kind": "rating", "movie_id": movies[0].pk, "value": 9},
        {"kind": "click", "movie_id": movies[0].pk},
        {"kind": "nope", "movie_id": movies[0].pk},
        {"kind": "click", "movie_id": 123_456},
    ]
    body = post(
        alice_client, {"events": events}, django_capture_on_commit_callbacks
    ).json()
    assert body["detail"]["events"].keys() == {"0", "2", "3"}
    assert not Interaction.objects.exists()


def test_an_event_within_five_minutes_ahead_is_accepted(
    alice_client, movies, django_capture_on_commit_callbacks
):
    at = timezone.now() + timedelta(minutes=4)
    response = post(
        alice_client,
        {"kind": "click", "movie_id": movies[0].pk, "occurred_at": at.isoformat()},
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 202


@pytest.mark.parametrize(
    "body",
    [{"events": []}, {"events": "x"}, [1, 2], {"events": [{}] * 501}],
    ids=["empty", "not-a-list", "bare-list", "too-many"],
)
def test_malformed_batches_are_refused(alice_client, body):
    response = alice_client.post("/v1/events", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert not Interaction.objects.exists()


# ------------------------------------------------------------------ features
def test_the_features_follow_the_events(
    alice_client, user, movies, django_capture_on_commit_callbacks
):
    post(
        alice_client,
        {"events": [
            {"kind": "rating", "movie_id": movies[0].pk, "value": 5},
            {"kind": "click", "movie_id": movies[1].pk},
            {"kind": "watchlist", "movie_id": movies[2].pk, "value": 1},
        ]},
        django_capture_on_commit_callbacks,
    )  # fmt: skip
    body = alice_client.get("/v1/events/features").json()
    assert body["user_id"] == user.pk
    assert [e["movie_id"] for e in body["recent"]] == [m.pk for m in movies[::-1]]
    assert body["counts"]["1h"] == {"rating": 1, "click": 1, "watch": 0, "watchlist": 1}
    genres = {g["genre"]: g["weight"] for g in body["genre_affinity"]}
    assert genres == pytest.approx({"Drama": 2.0, "Comedy": 1.0}, rel=1e-3)
    assert body["session"]["number"] == 1 and body["session"]["events"] == 3
    assert body["session"]["active"] is True
    assert body["events_applied"] == 3 and body["updated_at"] is not None


def test_a_user_without_events_has_an_empty_profile(alice_client, user):
    body = alice_client.get("/v1/events/features").json()
    assert body["recent"] == [] and body["session"] is None
    assert body["updated_at"] is None


def test_bob_cannot_read_alices_features(api_client):
    alice, bob = UserFactory(), UserFactory()
    api_client.force_authenticate(bob)
    response = api_client.get(f"/v1/events/features?user_id={alice.pk}")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert api_client.get(f"/v1/events/features?user_id={bob.pk}").status_code == 200


def test_staff_may_read_any_users_features(api_client):
    alice = UserFactory()
    api_client.force_authenticate(UserFactory(is_staff=True))
    assert (
        api_client.get(f"/v1/events/features?user_id={alice.pk}").json()["user_id"]
        == alice.pk
    )
    assert api_client.get("/v1/events/features?user_id=987654").status_code == 404
    assert api_client.get("/v1/events/features?user_id=x").status_code == 400


def test_the_events_endpoints_are_in_the_schema(api_client):
    schema = api_client.get("/v1/schema", HTTP_ACCEPT="application/json").json()
    post_op = schema["paths"]["/v1/events"]["post"]
    assert {"202", "400", "401"} <= set(post_op["responses"])
    assert "examples" in post_op["requestBody"]["content"]["application/json"]
    assert "/v1/events/features" in schema["paths"]


_CANDIDATES = [
    {"kind": "click", "movie_id": 5},
    {"kind": "rating", "movie_id": 5, "value": 4},
    {"kind": "rating", "movie_id": 5, "value": 4.5, "idempotency_key": "k-1"},
    {"kind": "watch", "movie_id": 9, "value": None, "request_id": "r" * 64},
    {"kind": "watchlist", "movie_id": 1, "value": 0, "request_id": None},
    # everything below leaves the fast path: the serializer judges it
    {"kind": "click", "movie_id": "5"},
    {"kind": "click", "movie_id": True},
    {"kind": "click", "movie_id": 0},
    {"kind": "Click", "movie_id": 5},
    {"kind": 3, "movie_id": 5},
    {"kind": "rating", "movie_id": 5, "value": "4"},
    {"kind": "rating", "movie_id": 5, "value": True},
    {"kind": "click", "movie_id": 5, "idempotency_key": " k "},
    {"kind": "click", "movie_id": 5, "idempotency_key": ""},
    {"kind": "click", "movie_id": 5, "idempotency_key": "k\x00"},
    {"kind": "click", "movie_id": 5, "idempotency_key": "ключ"},
    {"kind": "click", "movie_id": 5, "idempotency_key": "k" * 101},
    {"kind": "click", "movie_id": 5, "request_id": "r" * 65},
    {"kind": "click", "movie_id": 5, "occurred_at": "2026-12-04T10:00:00Z"},
    {"kind": "click", "movie_id": 5, "extra": 1},
    {"movie_id": 5},
    ["kind", "click"],
]


@pytest.mark.parametrize("item", _CANDIDATES)
def test_the_fast_parse_is_the_serializers(item):
    from learning.api.events import EventInputSerializer, _canonical
    from learning.services import EventInput

    fast = _canonical(item)
    serializer = EventInputSerializer(data=item)
    if fast is not None:  # the fast path only takes what the serializer takes
        assert serializer.is_valid(), serializer.errors
        assert fast == EventInput(**serializer.validated_data)
        assert type(fast.value) is type(EventInput(**serializer.validated_data).value)
    assert (fast is not None) == (_CANDIDATES.index(item) < 5)


@pytest.mark.django_db(transaction=True)
def test_an_event_for_a_movie_deleted_since_it_was_seen_is_refused(user):
    """The catalog answers "does it exist" from memory for movies it saw in
    the last minute; the log's foreign key still refuses one deleted since,
    and the error names it as if the catalog had been asked."""
    from apex_site.errors import ApplicationError
    from learning import services
    from learning.services import EventInput

    movie, other = MovieFactory(), MovieFactory()
    gone = movie.pk
    click = [EventInput(kind="click", movie_id=gone)]
    services.events_record(user_id=user.pk, events=click)  # now known
    movie.delete()
    with pytest.raises(ApplicationError) as refused:
        services.events_record(
            user_id=user.pk,
            events=[EventInput(kind="click", movie_id=other.pk), *click],
        )
    assert refused.value.detail == {
        "events": {"1": {"movie_id": [f"No movie with id {gone}."]}}
    }
    assert not Interaction.objects.filter(movie_id=other.pk).exists()
