"""The variant on the live path (issue 16): a user in an experiment is served
with the variant's weights version and exploration, every served list (API,
home rows, movie rows, the live feed) is logged with what was really served
and each item's propensity, and page links carry the list's request id so
that opening a movie from a row is a click joined to that row's slate."""

from __future__ import annotations

import re

import pytest
from django.db.models import Max

from accounts.tests.factories import UserFactory
from experiments import selectors, services
from experiments.models import Experiment, Impression, Variant
from learning.models import Interaction
from recommendations import services as recommendation_services
from recommendations.models import EnsembleWeights
from recommendations.tests.feed_fixtures import (  # noqa: F401 (fixtures)
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


@pytest.fixture
def catalog():
    return make_catalog(40)


@pytest.fixture
def order(catalog):
    return [m.pk for m in catalog]


@pytest.fixture
def serving(tmp_path, order):
    # FakeEngine.with_weights serves the reversed order: "other weights"
    return fake_serving(tmp_path, FakeEngine(order))


@pytest.fixture
def member(catalog):
    user = UserFactory()
    give_history(user, catalog[:3])
    return user


def _experiment(**variant) -> Experiment:
    exp = Experiment.objects.create(key="live-exp", name="live")
    Variant.objects.create(experiment=exp, key="only", position=0, share=1.0, **variant)
    services.experiment_start(experiment=exp)
    selectors.running_experiments_forget()
    return exp


def _weights_version() -> int:
    return recommendation_services.ensemble_weights_propose(
        fit={"weights": {"ease": 1.0}}
    ).version


def _served(api_client, user) -> dict:
    api_client.force_authenticate(user)
    response = api_client.get(f"/v1/recommendations/user/{user.pk}?n=5")
    assert response.status_code == 200, response.json()
    return response.json()


def test_the_variant_is_served_with_its_weights_version(
    api_client, serving, member, order
) -> None:
    control = _served(api_client, member)
    assert control["meta"]["weights_version"] is None
    assert [i["id"] for i in control["items"]] == order[3:8]

    version = _weights_version()
    _experiment(weights_version=version)
    body = _served(api_client, member)
    assert body["meta"]["weights_version"] == version
    assert [i["id"] for i in body["items"]] == list(reversed(order))[:5]
    # the variant's answers are cached apart from the active weights' answers
    again = _served(api_client, member)
    assert again["meta"]["cached"] is True and again["items"] == body["items"]

    services.impressions_flush()
    row = Impression.objects.get(request_id=body["request_id"])
    assert (row.experiment, row.variant, row.weights_version) == (
        "live-exp",
        "only",
        version,
    )
    assert [i["propensity"] for i in row.items] == [1.0] * 5


def test_an_unknown_weights_version_serves_the_active_weights_and_says_so(
    api_client, serving, member, order, caplog
) -> None:
    missing = (EnsembleWeights.objects.aggregate(v=Max("version"))["v"] or 0) + 7
    _experiment(weights_version=missing)
    body = _served(api_client, member)
    assert [i["id"] for i in body["items"]] == order[3:8]
    assert body["meta"]["weights_version"] is None
    assert "experiment weights not applied" in caplog.text
    services.impressions_flush()
    row = Impression.objects.get(request_id=body["request_id"])
    # logged as what was served, not as what the variant asked for
    assert row.weights_version is None and row.variant == "only"


def test_an_exploring_variant_logs_its_propensities_and_skips_the_cache(
    api_client, real_bundle
) -> None:
    install_runtime(real_bundle.root)
    (user,) = real_catalog(real_bundle, real_bundle.train_users[:1]).values()
    _experiment(exploration="epsilon_greedy", epsilon=0.5)
    lists = [_served(api_client, user) for _ in range(4)]
    for body in lists:
        assert body["meta"]["policy"] == "epsilon_greedy", body["meta"]
        assert body["meta"]["cached"] is False
    services.impressions_flush()
    rows = Impression.objects.filter(request_id__in=[b["request_id"] for b in lists])
    assert rows.count() == 4
    propensities = [i["propensity"] for row in rows for i in row.items]
    assert all(0.0 < p <= 1.0 for p in propensities)
    assert min(propensities) < 1.0  # explored slots are not certain
    assert {row.policy for row in rows} == {"epsilon_greedy"}


def test_home_rows_are_logged_and_a_click_from_a_row_joins_its_slate(
    client, serving, member
) -> None:
    client.force_login(member)
    page = client.get("/").content.decode()
    rids = re.findall(r'data-request-id="([0-9a-f]{32})"', page)
    assert rids, "every row with movies names its slate"
    services.impressions_flush()
    surfaces = set(
        Impression.objects.filter(request_id__in=rids).values_list("surface", flat=True)
    )
    assert "page:home:for_you" in surfaces and "page:home:trending" in surfaces

    href = re.search(r'href="(/catalog/movies/(\d+)/\?rid=([0-9a-f]{32}))"', page)
    assert href, "movie links carry the request id"
    url, movie_id, rid = href.group(1), int(href.group(2)), href.group(3)
    assert client.get(url).status_code == 200
    assert client.get(url).status_code == 200  # a reload is not a second click
    clicks = Interaction.objects.filter(user=member, kind="click", request_id=rid)
    assert list(clicks.values_list("movie_id", flat=True)) == [movie_id]
    (slate,) = selectors.slates_with_rewards(Impression.objects.filter(request_id=rid))
    assert sum(slate.clicks) == 1

    # a made-up rid is not a click
    client.get(f"/catalog/movies/{movie_id}/?rid=not-a-request-id")
    assert Interaction.objects.filter(user=member, kind="click").count() == 1


def test_movie_rows_and_similar_movies_are_logged(
    client, api_client, serving, member, catalog
) -> None:
    client.force_login(member)
    movie = catalog[0]
    fragment = client.get(f"/recommendations/movies/{movie.pk}/rows/").content.decode()
    assert re.search(r'data-request-id="[0-9a-f]{32}"', fragment)

    api_client.force_authenticate(member)
    body = api_client.get(f"/v1/recommendations/id/{movie.pk}?n=4").json()
    services.impressions_flush()
    row = Impression.objects.get(request_id=body["request_id"])
    assert row.surface == "api:similar" and row.user_id == member.pk
    assert Impression.objects.filter(surface="page:movie:similar").count() == 1


def test_a_live_feed_is_logged_when_a_tab_draws_it_and_only_then(
    serving, member
) -> None:
    payload = recommendation_services.feed_refresh(user_id=member.pk)
    rid = payload["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    assert all(item["url"].endswith(f"?rid={rid}") for item in payload["items"])
    services.impressions_flush()
    assert not Impression.objects.filter(request_id=rid).exists()  # not seen yet

    other = UserFactory()
    assert recommendation_services.feed_shown(user_id=other.pk, request_id=rid) is False
    assert recommendation_services.feed_shown(user_id=member.pk, request_id=rid)
    assert not recommendation_services.feed_shown(user_id=member.pk, request_id=rid)
    services.impressions_flush()
    row = Impression.objects.get(request_id=rid)
    assert row.surface == "page:home:live" and row.user_id == member.pk
    assert [i["movie_id"] for i in row.items] == [i["id"] for i in payload["items"]]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_socket_reports_what_the_tab_drew(serving, member) -> None:
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator

    from recommendations.consumers import FeedConsumer

    payload = recommendation_services.feed_refresh(user_id=member.pk)

    async def scenario():
        communicator = WebsocketCommunicator(FeedConsumer.as_asgi(), "/ws/feed/")
        communicator.scope["user"] = member
        assert (await communicator.connect())[0]
        await communicator.send_json_to(
            {"type": "shown", "request_id": payload["request_id"]}
        )
        await communicator.send_json_to({"type": "ping"})  # the "shown" went first
        assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
        await communicator.disconnect()

    async_to_sync(scenario)()
    services.impressions_flush()
    assert Impression.objects.filter(request_id=payload["request_id"]).exists()


def test_a_sampled_list_logs_its_candidates_for_off_policy_evaluation(
    api_client, real_bundle, settings
) -> None:
    settings.APEX_IMPRESSIONS_CANDIDATES_SHARE = 1.0
    install_runtime(real_bundle.root)
    (user,) = real_catalog(real_bundle, real_bundle.train_users[:1]).values()
    body = _served(api_client, user)
    assert body["meta"]["scorer"] == "ensemble" and body["meta"]["cached"] is False
    shown = [i["id"] for i in body["items"]]
    api_client.post(
        "/v1/events",
        {"kind": "click", "movie_id": shown[1], "request_id": body["request_id"]},
        format="json",
    )
    services.impressions_flush()
    row = Impression.objects.get(request_id=body["request_id"])
    candidates = row.candidates
    assert set(shown) <= set(candidates["movie_ids"])
    # the ensemble's active members (those with a non-zero weight)
    assert (
        {"itemknn", "ease"} <= set(candidates["members"]) <= {"pop", "itemknn", "ease"}
    )
    assert all(
        len(v) == len(candidates["movie_ids"]) for v in candidates["members"].values()
    )
    (record,) = selectors.ope_records()
    assert record["rewards"][:2] == [0, 1]
    assert [candidates["movie_ids"][k] for k in record["shown"]] == shown
