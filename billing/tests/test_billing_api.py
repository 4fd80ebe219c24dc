"""``/v1/billing/*`` against stripe-mock, and without Stripe keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.models import BillingAccount, StripePrice

pytestmark = pytest.mark.django_db


@pytest.fixture
def caller(api_client, user):
    api_client.force_authenticate(user)
    return api_client


def test_plans_are_public_and_say_what_can_be_bought(api_client, no_stripe):
    response = api_client.get("/v1/billing/plans")
    assert response.status_code == 200
    plans = {p["key"]: p for p in response.json()}
    assert list(plans) == ["free", "pro", "business"]
    assert plans["free"]["monthly_quota"] == 1000
    assert plans["pro"]["overage_cents_per_1000"] == 50
    assert plans["business"]["analytics_api"] is True
    assert not any(p["purchasable"] for p in plans.values())


def test_synced_paid_plans_are_purchasable(api_client, synced_plans):
    plans = {p["key"]: p for p in api_client.get("/v1/billing/plans").json()}
    assert [k for k, p in plans.items() if p["purchasable"]] == ["pro", "business"]


def test_checkout_and_portal_answer_503_without_stripe_keys(caller, no_stripe):
    for url, body in (
        ("/v1/billing/checkout", {"plan": "pro"}),
        ("/v1/billing/portal", {}),
    ):
        response = caller.post(url, body)
        assert response.status_code == 503
        assert response.json() == {
            "code": "billing_not_configured",
            "message": "Billing is not configured on this server (no Stripe keys).",
            "detail": None,
        }


def test_checkout_returns_a_stripe_url_and_links_the_customer(
    caller, user, synced_plans
):
    response = caller.post("/v1/billing/checkout", {"plan": "pro"})
    assert response.status_code == 200, response.content
    assert response.json()["url"].startswith("https://checkout.stripe.com/")
    account = BillingAccount.objects.get(user=user)
    assert account.stripe_customer_id.startswith("cus_")
    from djstripe.models import Customer

    # dj-stripe's customer, linked by the subscriber key
    assert Customer.objects.get(id=account.stripe_customer_id).subscriber == user
    # the redirect changes nothing: only a webhook does
    assert account.plan == "free" and account.status == "none"


def test_checkout_refuses_free_unknown_and_unsynced_plans(caller, stripe_api):
    assert caller.post("/v1/billing/checkout", {"plan": "free"}).json()["code"] == (
        "plan_not_purchasable"
    )
    assert caller.post("/v1/billing/checkout", {"plan": "gold"}).status_code == 400
    response = caller.post("/v1/billing/checkout", {"plan": "pro"})
    assert (
        response.status_code == 503
        and "billing_sync_plans" in response.json()["message"]
    )


def test_checkout_refuses_a_second_subscription(caller, user, synced_plans):
    BillingAccount.objects.create(user=user, plan="pro", status="active")
    response = caller.post("/v1/billing/checkout", {"plan": "business"})
    assert response.status_code == 409
    assert response.json()["code"] == "already_subscribed"


def test_the_portal_needs_a_customer_and_returns_its_url(caller, user, stripe_api):
    assert caller.post("/v1/billing/portal", {}).json()["code"] == "no_billing_customer"
    BillingAccount.objects.create(user=user, stripe_customer_id="cus_test_1")
    response = caller.post("/v1/billing/portal", {})
    assert response.status_code == 200, response.content
    assert response.json()["url"].startswith("https://")


def test_usage_reports_this_month(caller, user, no_stripe):
    for _ in range(3):
        assert caller.get("/v1/events/features").status_code == 200
    body = caller.get("/v1/billing/usage").json()
    now = datetime.now(UTC)
    assert body["plan"] == "free"
    assert (body["used"], body["quota"], body["remaining"], body["overage"]) == (
        3, 1000, 997, 0,
    )  # fmt: skip
    assert body["days"][-1] == {"day": now.date().isoformat(), "calls": 3}
    assert len(body["days"]) == now.day
    assert body["reset_at"].startswith(f"{now.year + (now.month == 12)}-")


def test_billing_endpoints_need_authentication(api_client):
    for method, url in (
        ("post", "/v1/billing/checkout"),
        ("post", "/v1/billing/portal"),
        ("get", "/v1/billing/usage"),
    ):
        response = getattr(api_client, method)(url)
        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"


def test_the_schema_documents_billing_with_examples(client):
    schema = client.get(
        "/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    ).json()
    for path in ("/v1/billing/plans", "/v1/billing/checkout", "/v1/billing/portal",
                 "/v1/billing/usage"):  # fmt: skip
        assert path in schema["paths"]
    checkout = schema["paths"]["/v1/billing/checkout"]["post"]
    assert "503" in checkout["responses"]
    assert checkout["responses"]["503"]["content"]["application/json"]["examples"]
    assert schema["paths"]["/v1/billing/plans"]["get"]["security"] == [{}] or (
        "security" in schema["paths"]["/v1/billing/plans"]["get"]
    )


def test_plan_sync_creates_prices_and_mirrors_them_into_dj_stripe(synced_plans):
    from djstripe.models import Price, Product

    keys = sorted(p.lookup_key for p in synced_plans)
    assert keys == ["apex_business_monthly", "apex_pro_calls", "apex_pro_monthly"]
    assert StripePrice.objects.filter(metered=True).get().plan == "pro"
    assert Product.objects.filter(id__in=["apex_pro", "apex_business"]).count() == 2
    assert (
        Price.objects.filter(id__in=[p.stripe_price_id for p in synced_plans]).count()
        == 3
    )


def test_plan_sync_twice_keeps_one_row_per_lookup_key(synced_plans):
    from billing import services

    services.plans_sync()
    assert StripePrice.objects.count() == 3


def test_the_sync_command_runs(stripe_api, capsys):
    from django.core.management import call_command

    call_command("billing_sync_plans")
    out = capsys.readouterr().out
    assert "apex_pro_calls" in out and StripePrice.objects.count() == 3
