"""The user-recommendations API logs its list: the response's request id names
one impression with the served items, and a click sent with it joins."""

from __future__ import annotations

import pytest

from catalog.tests.factories import GenreFactory, MovieFactory
from experiments import selectors, services
from experiments.models import Experiment, Impression, Variant

pytestmark = pytest.mark.django_db


@pytest.fixture
def movies():
    drama = GenreFactory(name="Drama")
    return [MovieFactory(genres=[drama]) for _ in range(12)]


def test_the_served_list_is_logged_and_its_clicks_join(
    api_client, user, movies, django_capture_on_commit_callbacks
) -> None:
    api_client.force_authenticate(user)
    response = api_client.get(f"/v1/recommendations/user/{user.pk}?n=5")
    assert response.status_code == 200
    body = response.json()
    request_id = body["request_id"]
    served = [item["id"] for item in body["items"]]
    assert served
    services.impressions_flush()
    row = Impression.objects.get(request_id=request_id)
    assert row.user_id == user.pk and row.surface == "api:recommendations"
    assert [i["movie_id"] for i in row.items] == served
    assert row.experiment == "" and row.policy == "greedy"

    with django_capture_on_commit_callbacks(execute=True):
        r = api_client.post(
            "/v1/events",
            {"kind": "click", "movie_id": served[-1], "request_id": request_id},
            format="json",
        )
    assert r.status_code == 202
    (slate,) = selectors.slates_with_rewards([row])
    assert slate.clicks == [0] * (len(served) - 1) + [1]


def test_a_user_in_an_experiment_is_logged_with_the_variant(
    api_client, user, movies
) -> None:
    exp = Experiment.objects.create(key="api-exp", name="api")
    Variant.objects.create(experiment=exp, key="only", position=0, share=1.0,
                           diversity=0.3, weights_version=2)  # fmt: skip
    services.experiment_start(experiment=exp)
    selectors.running_experiments_forget()
    api_client.force_authenticate(user)
    body = api_client.get(f"/v1/recommendations/user/{user.pk}").json()
    services.impressions_flush()
    row = Impression.objects.get(request_id=body["request_id"])
    # no engine is loaded here: the database fallback served, not weights v2,
    # and the log says so (test_live_policy serves a variant's weights)
    assert (row.experiment, row.variant, row.weights_version) == (
        "api-exp",
        "only",
        None,
    )
    assert body["meta"]["fallback"] is True
