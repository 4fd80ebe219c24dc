"""Events that carry a request id reward the slate (and position) they came from."""

from __future__ import annotations

import pytest

from catalog.tests.factories import MovieFactory
from experiments import selectors, services
from experiments.models import Impression

pytestmark = pytest.mark.django_db


@pytest.fixture
def movies():
    return [MovieFactory() for _ in range(4)]


def post_events(client, events, capture):
    with capture(execute=True):
        response = client.post("/v1/events", {"events": events}, format="json")
    assert response.status_code == 202, response.json()


def test_clicks_join_their_slate_through_the_events_api(
    api_client, user, movies, django_capture_on_commit_callbacks
) -> None:
    a, b, c, d = (m.pk for m in movies)
    services.slate_record(
        request_id="req-1", user_id=user.pk, surface="api:recommendations",
        items=[{"movie_id": a, "propensity": 0.9}, {"movie_id": b, "propensity": 0.2},
               {"movie_id": c, "propensity": 0.3}],
    )  # fmt: skip
    services.slate_record(
        request_id="req-2", user_id=user.pk, surface="page:home",
        items=[{"movie_id": c}, {"movie_id": d}],
    )  # fmt: skip
    services.impressions_flush()
    api_client.force_authenticate(user)
    post_events(
        api_client,
        [
            {"kind": "click", "movie_id": b, "request_id": "req-1"},  # slot 2 of req-1
            {"kind": "rating", "movie_id": c, "value": 4.0, "request_id": "req-1"},
            {
                "kind": "click",
                "movie_id": d,
                "request_id": "req-1",
            },  # not shown in req-1
            {"kind": "click", "movie_id": a},  # no request id: joins nothing
            {"kind": "click", "movie_id": d, "request_id": "req-2"},
        ],
        django_capture_on_commit_callbacks,
    )
    slates = {s.request_id: s for s in selectors.slates_with_rewards(
        Impression.objects.all())}  # fmt: skip
    one, two = slates["req-1"], slates["req-2"]
    assert one.movie_ids == [a, b, c]
    assert one.clicks == [0, 1, 1] and one.ratings == [None, None, 4.0]
    assert one.propensities == [0.9, 0.2, 0.3]
    assert one.first_click_rank == 2
    assert two.clicks == [0, 1] and two.first_click_rank == 2
