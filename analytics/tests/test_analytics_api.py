"""``GET /v1/events/recommendation-analytics``: who may ask, and what they get."""

from __future__ import annotations

import pytest

from accounts.tests.factories import UserFactory
from analytics.tests.factories import small_log
from billing.models import BillingAccount

pytestmark = pytest.mark.django_db
URL = "/v1/events/recommendation-analytics"


def business_user():
    user = UserFactory()
    BillingAccount.objects.create(user=user, plan="business", status="active")
    return user


def test_anonymous_callers_are_not_authenticated(api_client):
    response = api_client.get(URL)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_a_free_user_is_not_entitled(api_client, user):
    api_client.force_authenticate(user)
    response = api_client.get(URL)
    assert response.status_code == 403
    assert response.json()["code"] == "analytics_not_entitled"


def test_a_pro_user_is_not_entitled(api_client):
    pro = UserFactory()
    BillingAccount.objects.create(user=pro, plan="pro", status="active")
    api_client.force_authenticate(pro)
    assert api_client.get(URL).status_code == 403


def test_a_business_user_gets_a_private_release_with_its_parameters(
    api_client, settings
):
    settings.APEX_DP_MAX_CONTRIBUTIONS = 10
    small_log()
    api_client.force_authenticate(business_user())
    response = api_client.get(
        URL, {"release": "genre_counts", "dimension": "gender", "epsilon": "0.5"}
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["epsilon"] == 0.5
    assert body["unit_of_privacy"] == "user"
    assert body["max_contributions_per_user"] == 10
    assert body["noise_scale"] == 20.0
    assert body["cached"] is False
    assert body["budget"]["epsilon_spent"] == 0.5
    assert {g["group"] for g in body["groups"]} == {
        "female",
        "male",
        "other",
        "unknown",
    }
    assert set(body["groups"][0]["counts"]) == {"Comedy", "Drama"}
    again = api_client.get(
        URL, {"release": "genre_counts", "dimension": "gender", "epsilon": "0.5"}
    ).json()
    assert again["cached"] is True and again["groups"] == body["groups"]


def test_staff_may_ask_for_top_movies(api_client):
    small_log()
    api_client.force_authenticate(UserFactory(is_staff=True))
    response = api_client.get(URL, {"release": "top_movies", "n": 2})
    assert response.status_code == 200
    group = response.json()["groups"][0]
    assert len(group["movies"]) == 2 and "counts" not in group


def test_bad_parameters_are_400(api_client):
    api_client.force_authenticate(UserFactory(is_staff=True))
    response = api_client.get(URL, {"dimension": "zip_code"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert api_client.get(URL, {"epsilon": "-1"}).status_code == 400


def test_beyond_the_budget_is_409(api_client, settings):
    settings.APEX_DP_EPSILON_CAP = 1.0
    small_log()
    api_client.force_authenticate(business_user())
    assert api_client.get(URL, {"epsilon": "1.0"}).status_code == 200
    response = api_client.get(URL, {"epsilon": "0.5", "dimension": "gender"})
    assert response.status_code == 409
    assert response.json()["code"] == "privacy_budget_exhausted"


def test_the_openapi_schema_documents_each_endpoint_and_its_errors():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    expected = {
        # 429: every throttled operation documents it (apex_site.openapi)
        "/v1/events/recommendation-analytics": {"200", "400", "401", "403", "409"}
        | {"429"},
        "/v1/evaluation/offline-metrics": {"200", "401", "403", "404", "429"},
        "/v1/platform/slo": {"200", "401", "403", "429"},
    }
    for path, codes in expected.items():
        operation = schema["paths"][path]["get"]
        assert set(operation["responses"]) == codes, path
    analytics = schema["paths"]["/v1/events/recommendation-analytics"]["get"]
    assert "unit of privacy is **one user**" in analytics["description"]
    body = schema["components"]["schemas"]["RecommendationAnalytics"]
    assert {"epsilon", "noise_scale", "unit_of_privacy", "budget", "groups"} <= set(
        body["required"]
    )
