"""``/v1/recommendations/*`` and ``/v1/admin/reload-ensemble-weights``:
permissions, parameters, response shape, and the real engine behind them."""

from __future__ import annotations

import pytest

from accounts.services import api_key_create
from accounts.tests.factories import UserFactory
from catalog.models import Collection, Movie
from catalog.tests.factories import CreditFactory, PersonFactory
from learning import selectors as learning_selectors
from recommendations import services
from recommendations.serving.runtime import get_runtime
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


@pytest.fixture
def catalog():
    return make_catalog()


@pytest.fixture
def engine_order(catalog):
    return [m.pk for m in reversed(catalog)]


@pytest.fixture
def serving(tmp_path, engine_order):
    return fake_serving(tmp_path, FakeEngine(engine_order))


@pytest.fixture
def member(catalog):
    user = UserFactory()
    give_history(user, catalog[:4])
    return user


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "detail"}
    if code:
        assert body["code"] == code
    return body


# ------------------------------------------------------------ permissions
def test_a_user_reads_their_own_recommendations(api_client, serving, member,
                                                engine_order):  # fmt: skip
    api_client.force_authenticate(member)
    response = api_client.get(f"/v1/recommendations/user/{member.pk}?n=5")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["user_id"] == member.pk
    assert [i["id"] for i in body["items"]] == engine_order[:5]
    first = body["items"][0]
    assert set(first) == {"id", "title", "year", "genres", "poster_url", "score",
                          "reason"}  # fmt: skip
    assert first["title"] == "Film 79" and first["reason"]
    meta = body["meta"]
    assert meta["tier"] == 2 and meta["tier_name"] == "onnx"
    assert meta["fallback"] is False and meta["gate_fired"] is False
    assert meta["artifact_version"] == "v1"
    assert {"engine", "history", "hydrate"} <= set(meta["timings_ms"])


def test_another_users_recommendations_are_forbidden(api_client, serving, member):
    intruder = UserFactory()
    api_client.force_authenticate(intruder)
    response = api_client.get(f"/v1/recommendations/user/{member.pk}")
    assert_error(response, 403, "permission_denied")
    # the same for an id that does not exist: no probing for accounts
    assert_error(api_client.get("/v1/recommendations/user/999999"), 403)


def test_staff_read_anybodys_and_get_404_for_nobody(api_client, serving, member):
    api_client.force_authenticate(UserFactory(is_staff=True))
    assert api_client.get(f"/v1/recommendations/user/{member.pk}").status_code == 200
    assert_error(api_client.get("/v1/recommendations/user/999999"), 404, "not_found")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/recommendations/user/1",
        "/v1/recommendations/id/1",
        "/v1/recommendations/id/1/enriched",
        "/v1/recommendations/knowledge-graph/1",
    ],
)
def test_anonymous_callers_get_401(api_client, path):
    assert_error(api_client.get(path), 401, "not_authenticated")


def test_an_api_key_authenticates(api_client, serving, member):
    _key, raw = api_key_create(user=member, name="ci")
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert api_client.get(f"/v1/recommendations/user/{member.pk}").status_code == 200


# ------------------------------------------------------------ parameters
@pytest.mark.parametrize(
    "query, field",
    [
        ("n=0", "n"),
        ("n=101", "n"),
        ("n=ten", "n"),
        ("diversity=1.5", "diversity"),
        ("diversity=-0.1", "diversity"),
        ("diversity=nan", "diversity"),
        ("exclude_seen=maybe", "exclude_seen"),
        ("explain=2", "explain"),
    ],
)
def test_bad_parameters_are_400_with_the_error_shape(
    api_client, serving, member, query, field
):
    api_client.force_authenticate(member)
    body = assert_error(
        api_client.get(f"/v1/recommendations/user/{member.pk}?{query}"), 400, "invalid"
    )
    assert list(body["detail"]) == [field]


@pytest.mark.parametrize("path", ["id/{m}", "id/{m}/enriched"])
def test_similar_endpoints_validate_too(api_client, serving, member, catalog, path):
    api_client.force_authenticate(member)
    url = "/v1/recommendations/" + path.format(m=catalog[0].pk)
    assert_error(api_client.get(url + "?n=500"), 400, "invalid")
    assert_error(api_client.get(url + "?diversity=x"), 400, "invalid")
    kg = f"/v1/recommendations/knowledge-graph/{catalog[0].pk}?n=0"
    assert_error(api_client.get(kg), 400, "invalid")


def test_explain_false_drops_reasons(api_client, serving, member):
    api_client.force_authenticate(member)
    body = api_client.get(
        f"/v1/recommendations/user/{member.pk}?explain=false&n=3"
    ).json()
    assert body["items"] and all("reason" not in item for item in body["items"])


def test_exclude_seen_reaches_the_engine(api_client, serving, member, catalog):
    api_client.force_authenticate(member)
    seen = {m.pk for m in catalog[:4]}
    url = f"/v1/recommendations/user/{member.pk}?n=100"
    default = {i["id"] for i in api_client.get(url).json()["items"]}
    assert not default & seen
    kept = {
        i["id"] for i in api_client.get(url + "&exclude_seen=false").json()["items"]
    }
    assert seen <= kept


def test_one_request_costs_a_fixed_number_of_queries(
    api_client, serving, member, django_assert_max_num_queries
):
    api_client.force_authenticate(member)
    get_runtime().get()  # loading is not per request
    with django_assert_max_num_queries(3):  # history, in_bulk, genres
        response = api_client.get(f"/v1/recommendations/user/{member.pk}?n=30")
    assert len(response.json()["items"]) == 30


# ------------------------------------------------------------ similar, graph
def test_similar_and_enriched(api_client, serving, member, catalog):
    movie = catalog[-3]
    movie.trailer_key = "abc123"
    movie.overview = "A film."
    movie.save()
    CreditFactory(movie=movie, person=PersonFactory(name="Lead Actor"),
                  character="Hero")  # fmt: skip
    api_client.force_authenticate(member)
    plain = api_client.get(f"/v1/recommendations/id/{catalog[0].pk}?n=30").json()
    assert plain["movie_id"] == catalog[0].pk
    assert catalog[0].pk not in [i["id"] for i in plain["items"]]
    rich = api_client.get(
        f"/v1/recommendations/id/{catalog[0].pk}/enriched?n=30"
    ).json()
    item = next(i for i in rich["items"] if i["id"] == movie.pk)
    assert item["trailer_key"] == "abc123"
    assert item["trailer_url"].endswith("abc123")
    assert item["cast"] == [{"name": "Lead Actor", "character": "Hero"}]
    assert item["overview"] == "A film."
    assert item["poster_url"].startswith("http://testserver/catalog/movies/")
    assert_error(api_client.get("/v1/recommendations/id/999999"), 404, "not_found")


def test_knowledge_graph_from_the_engine(api_client, serving, member, catalog):
    api_client.force_authenticate(member)
    body = api_client.get(
        f"/v1/recommendations/knowledge-graph/{catalog[0].pk}?n=2"
    ).json()
    assert body["movie"]["id"] == catalog[0].pk
    assert [m["id"] for m in body["relations"]["director"]] == [
        catalog[-1].pk,
        catalog[-2].pk,
    ]
    assert body["relations"]["collection"] == []
    assert body["meta"]["scorer"] == "knowledge_graph"


def test_knowledge_graph_fallback_reads_the_catalog(api_client, tmp_path, member,
                                                    catalog):  # fmt: skip
    install_runtime(tmp_path / "nothing")
    director = PersonFactory(name="Same Director")
    saga = Collection.objects.create(name="Saga")
    for movie in (catalog[0], catalog[7]):
        CreditFactory(movie=movie, person=director, role="director")
        movie.collection = saga
        movie.save()
    api_client.force_authenticate(member)
    body = api_client.get(f"/v1/recommendations/knowledge-graph/{catalog[0].pk}").json()
    assert body["meta"]["fallback"] is True
    assert [m["id"] for m in body["relations"]["director"]] == [catalog[7].pk]
    assert [m["id"] for m in body["relations"]["collection"]] == [catalog[7].pk]


# ------------------------------------------------------------ weights reload
def test_reload_weights_is_staff_only(api_client, serving, member):
    url = "/v1/admin/reload-ensemble-weights"
    assert_error(api_client.post(url), 401)
    api_client.force_authenticate(member)
    assert_error(api_client.post(url), 403)


def test_reload_weights_without_an_active_version_is_409(api_client, serving):
    api_client.force_authenticate(UserFactory(is_staff=True))
    assert_error(
        api_client.post("/v1/admin/reload-ensemble-weights"), 409, "no_active_weights"
    )


def test_reload_weights_refused_by_the_engine_keeps_the_old_one(
    api_client, tmp_path, real_bundle
):
    runtime = install_runtime(real_bundle.root)
    before = runtime.get()
    weights = services.ensemble_weights_propose(fit={"weights": {"sasrec": 1.0}})
    services.ensemble_weights_activate(version=weights.version)
    api_client.force_authenticate(UserFactory(is_staff=True))
    assert_error(
        api_client.post("/v1/admin/reload-ensemble-weights"), 422, "weights_rejected"
    )
    assert runtime.peek() is before


def _ranking(api_client, user) -> list[int]:
    url = f"/v1/recommendations/user/{user.pk}?n=10&diversity=0"
    body = api_client.get(url).json()
    assert body["meta"]["scorer"] == "ensemble", body["meta"]
    return [item["id"] for item in body["items"]]


def _activate_and_reload(api_client, weights: dict, gate=None) -> dict:
    version = services.ensemble_weights_propose(
        fit={"weights": weights, "gate": {"threshold": gate}}
    )
    services.ensemble_weights_activate(version=version.version)
    response = api_client.post("/v1/admin/reload-ensemble-weights")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["weights_version"] == version.version
    assert body["weights"] == weights
    assert body["artifact_version"] == "tiny-v1"
    return body


def test_reloaded_weights_change_the_real_ranking(api_client, real_bundle):
    """A real bundle: activating other weights and reloading them changes the
    served ranking; the artifact version stays, only the payload is swapped.
    (No gate threshold = the gate never fires, so the ensemble ranks.)"""
    runtime = install_runtime(real_bundle.root)
    users = real_catalog(real_bundle, real_bundle.train_users[:3])
    api_client.force_authenticate(UserFactory(is_staff=True))
    first = runtime.get()

    _activate_and_reload(api_client, {"ease": 1.0})
    ease_bundle = runtime.get()
    assert ease_bundle is not first and ease_bundle.version == first.version
    assert ease_bundle.payload.ensemble.weight_dict()["ease"] == pytest.approx(1.0)
    ease = {u: _ranking(api_client, user) for u, user in users.items()}

    _activate_and_reload(api_client, {"pop": 1.0})
    pop = {u: _ranking(api_client, user) for u, user in users.items()}
    assert pop != ease
    # pop-only weights put more popular movies in the list than ease-only
    count = dict(Movie.objects.values_list("pk", "rating_count"))
    for u in users:
        assert sum(count[i] for i in pop[u]) > sum(count[i] for i in ease[u])


def test_a_gate_threshold_of_zero_makes_content_rank(api_client, real_bundle):
    install_runtime(real_bundle.root)
    users = real_catalog(real_bundle, real_bundle.train_users[:1])
    api_client.force_authenticate(UserFactory(is_staff=True))
    _activate_and_reload(api_client, {"ease": 0.5, "itemknn": 0.5}, gate=0.0)
    user = next(iter(users.values()))
    meta = api_client.get(f"/v1/recommendations/user/{user.pk}").json()["meta"]
    assert meta["gate_fired"] is True and meta["scorer"] == "content"


def test_the_real_engine_serves_the_user_endpoint(api_client, real_bundle):
    install_runtime(real_bundle.root)
    users = real_catalog(real_bundle, real_bundle.train_users[:2])
    for user in users.values():
        api_client.force_authenticate(user)
        body = api_client.get(f"/v1/recommendations/user/{user.pk}?n=10").json()
        history = learning_selectors.user_history_ids(user_id=user.pk)
        ids = [i["id"] for i in body["items"]]
        assert len(ids) == 10 and not set(ids) & set(history)
        assert all(ITEM_BASE <= i < ITEM_BASE + 150 for i in ids)
        assert body["meta"]["scorer"] in {"ensemble", "content"}
        assert body["meta"]["artifact_version"] == "tiny-v1"
        titles = {f"Item {i - ITEM_BASE}" for i in history}
        for item in body["items"]:
            named = item["reason"].split(" watched ", 1)[-1]
            assert named in titles or item["reason"] == "Popular right now", item
        graph = api_client.get(
            f"/v1/recommendations/knowledge-graph/{ids[0]}?n=3"
        ).json()
        assert graph["meta"]["fallback"] is False
        assert len(graph["relations"]["genres"]) == 3


def test_the_schema_lists_the_endpoints(api_client):
    schema = api_client.get("/v1/schema?format=json").json()
    for path in (
        "/v1/recommendations/user/{user_id}",
        "/v1/recommendations/id/{movie_id}",
        "/v1/recommendations/id/{movie_id}/enriched",
        "/v1/recommendations/knowledge-graph/{movie_id}",
        "/v1/admin/reload-ensemble-weights",
    ):
        assert path in schema["paths"], path
