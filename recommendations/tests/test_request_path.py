"""The trimmed request path of ``GET /v1/recommendations/user/{id}`` (issue
17): the plain-JSON rendering equals the documented serializers', the
``Server-Timing`` breakdown and who sees it, a JWT's user and the history
read from the cache, and the writer dropping the cached history."""

from __future__ import annotations

import pytest
from django.test import override_settings
from rest_framework.test import APIRequestFactory
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from apex_site.timing import HEADER
from learning import selectors as learning_selectors
from learning import services as learning_services
from recommendations import selectors
from recommendations.api.recommendations import (
    UserRecommendationsSerializer,
    items_json,
    meta_json,
)
from recommendations.serving.runtime import get_runtime
from recommendations.tests.feed_fixtures import (  # noqa: F401 (fixtures)
    FakeEngine,
    _isolated_serving,
    fake_serving,
    give_history,
    make_catalog,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog():
    return make_catalog()


@pytest.fixture
def serving(tmp_path, catalog):
    return fake_serving(tmp_path, FakeEngine([m.pk for m in reversed(catalog)]))


@pytest.fixture
def member(catalog):
    user = UserFactory()
    give_history(user, catalog[:4])
    return user


def _stages(response) -> dict[str, float]:
    return {
        part.split(";dur=")[0].strip(): float(part.split(";dur=")[1])
        for part in response[HEADER].split(",")
    }


@pytest.mark.parametrize("explain", [True, False])
@pytest.mark.parametrize("history", [True, False])  # engine list / fallback list
def test_the_plain_json_is_the_serializers_json(serving, catalog, explain, history):
    user = UserFactory()
    if history:
        give_history(user, catalog[:3])
    result = selectors.feed_for(user_id=user.pk, n=8, explain=explain)
    request = APIRequestFactory().get("/", SERVER_NAME="testserver")
    expected = UserRecommendationsSerializer(
        {
            "user_id": user.pk,
            "request_id": "r1",
            "items": result.items,
            "meta": result.meta,
        },
        context={"request": request, "explain": explain},
    ).data
    plain = {
        "user_id": user.pk,
        "request_id": "r1",
        "items": items_json(result.items, request, explain=explain),
        "meta": meta_json(result.meta),
    }
    assert result.items
    assert plain == expected


def test_staff_see_the_timing_breakdown_and_others_do_not(api_client, serving, member):
    staff = UserFactory(is_staff=True)
    url = f"/v1/recommendations/user/{member.pk}"
    api_client.force_authenticate(member)
    assert HEADER not in api_client.get(url)
    api_client.force_authenticate(staff)
    response = api_client.get(url)
    assert response.status_code == 200
    stages = _stages(response)
    assert {"auth", "throttle", "history", "engine", "impression", "render",
            "total"} <= set(stages)  # fmt: skip
    assert all(ms >= 0 for ms in stages.values())
    assert stages["total"] >= stages["engine"] + stages["render"]


@override_settings(APEX_SERVER_TIMING="all")
def test_every_caller_sees_it_when_told_to(api_client, serving, member):
    from apex_site import timing

    api_client.force_authenticate(member)
    response = api_client.get(f"/v1/recommendations/user/{member.pk}")
    assert "engine" in _stages(response)
    # pages and other endpoints record no stage and get no header
    assert HEADER not in api_client.get("/v1/platform/status")
    assert timing.header_value({"a": 1.0, "b": 0.25}) == "a;dur=1.000, b;dur=0.250"


def test_a_jwt_request_reads_its_user_from_the_cache(
    api_client, serving, member, django_assert_max_num_queries
):
    get_runtime().get()
    token = str(AccessToken.for_user(member))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    url = f"/v1/recommendations/user/{member.pk}?n=5"
    assert api_client.get(url).status_code == 200  # fills the cache
    with django_assert_max_num_queries(1) as queries:  # the history only
        assert api_client.get(url).status_code == 200
    assert not any("accounts_user" in q["sql"] for q in queries.captured_queries)
    member.is_active = False
    member.save()  # drops the cached row: the next request sees it
    assert api_client.get(url).status_code == 401


@override_settings(APEX_HISTORY_CACHE_SECONDS=60)
def test_the_history_is_cached_and_the_writer_drops_it(
    catalog, member, django_assert_num_queries, django_capture_on_commit_callbacks
):
    before = learning_selectors.user_history_ids(user_id=member.pk)
    with django_assert_num_queries(0):
        assert learning_selectors.user_history_ids(user_id=member.pk) == before
    with django_capture_on_commit_callbacks(execute=True):
        learning_services.interaction_record(
            user_id=member.pk, movie_id=catalog[10].pk, kind="click"
        )
    after = learning_selectors.user_history_ids(user_id=member.pk)
    assert after == [*before, catalog[10].pk]
    # a different length is never cached
    with django_assert_num_queries(1):
        learning_selectors.user_history_ids(user_id=member.pk, limit=2)


def test_ping_is_the_authenticated_floor(
    api_client, member, django_assert_max_num_queries
):
    from accounts.services import api_key_create

    assert api_client.get("/v1/platform/ping").status_code == 401
    _key, raw = api_key_create(user=member, name="ping")
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert api_client.get("/v1/platform/ping").json() == {
        "user_id": member.pk,
        "staff": False,
    }
    with django_assert_max_num_queries(0):  # the key row is cached
        assert api_client.get("/v1/platform/ping").status_code == 200


def test_the_placeholder_poster_is_the_reversed_url(catalog):
    from django.urls import reverse

    from catalog.selectors import poster_url

    for movie in catalog[:3]:
        movie.poster_path = ""
        assert poster_url(movie) == reverse("catalog:poster", args=[movie.pk])
