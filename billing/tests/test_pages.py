"""Pricing, the account's billing page and the admin, rendered with real data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.models import BillingAccount, DailyUsage, Invoice, PlanChange

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(client, user):
    client.force_login(user)
    return user


def test_pricing_shows_every_plan_to_anyone(client, no_stripe):
    html = client.get("/pricing/").content.decode()
    for text in ("Free", "Pro", "Business", "1,000 calls a month", "$29.00/month",
                 "Then $0.50 per 1,000 calls", "The analytics API",
                 "Billing is not configured"):  # fmt: skip
        assert text in html, text
    assert 'href="/pricing/"' in html  # the nav link


def test_pricing_offers_checkout_when_billing_is_configured(
    client, member, synced_plans
):
    html = client.get("/pricing/").content.decode()
    assert 'action="/billing/checkout/pro/"' in html
    assert 'action="/billing/checkout/business/"' in html
    assert "Your plan" in html  # on Free


def test_the_checkout_button_redirects_to_stripe(client, member, synced_plans):
    response = client.post("/billing/checkout/pro/")
    assert response.status_code == 302
    assert response["Location"].startswith("https://checkout.stripe.com/")


def test_checkout_without_keys_explains_itself(client, member, no_stripe):
    response = client.post("/billing/checkout/pro/", follow=True)
    assert "Billing is not configured" in response.content.decode()


def test_the_billing_page_shows_plan_usage_and_invoices(client, member, no_stripe):
    BillingAccount.objects.create(
        user=member,
        plan="pro",
        status="active",
        current_period_end=datetime.now(UTC) + timedelta(days=20),
    )
    today = datetime.now(UTC).date()
    DailyUsage.objects.create(user=member, day=today, calls=25_000)
    Invoice.objects.create(
        user=member,
        stripe_invoice_id="in_1",
        number="APEX-0042",
        status="paid",
        amount_due=2900,
        amount_paid=2900,
        hosted_invoice_url="https://invoice.stripe.com/i/1",
        created=datetime.now(UTC),
    )
    html = client.get("/accounts/billing/").content.decode()
    assert 'data-testid="current-plan">Pro<' in html
    assert "25,000 of 100,000 calls used this month" in html
    assert '<progress id="usage-bar" max="100000" value="25000"' in html
    assert "APEX-0042" in html and "29.00 USD" in html
    assert "past-due-banner" not in html


def test_a_past_due_account_sees_the_banner(client, member, no_stripe):
    BillingAccount.objects.create(
        user=member,
        plan="pro",
        status="past_due",
        past_due_since=datetime.now(UTC) - timedelta(days=1),
    )
    html = client.get("/accounts/billing/").content.decode()
    assert 'data-testid="past-due-banner"' in html
    assert "Your last payment failed" in html
    assert 'data-testid="current-plan">Pro<' in html  # still within the grace


def test_the_status_partial_is_what_the_page_polls(client, member):
    html = client.get("/accounts/billing/status/").content.decode()
    assert html.lstrip().startswith('<div id="plan-status"')
    assert 'hx-trigger="every 5s, apex:billing from:body"' in html


def test_the_account_page_links_to_billing(client, member):
    assert 'href="/accounts/billing/"' in client.get("/accounts/").content.decode()


def test_billing_pages_need_a_login(client):
    assert client.get("/accounts/billing/").status_code == 302


@pytest.fixture
def admin_client_(client, django_user_model):
    admin = django_user_model.objects.create_superuser(
        email="admin@example.com", password="x"
    )
    client.force_login(admin)
    return client, admin


def test_the_admin_override_changes_the_plan_and_leaves_an_audit_row(
    admin_client_, user
):
    client, admin = admin_client_
    response = client.post(
        "/admin/billing/billingaccount/add/",
        {"user": user.pk, "override_plan": "business", "override_reason": "partner"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    from billing import selectors

    assert selectors.user_entitlements(user=user).plan.key == "business"
    change = PlanChange.objects.get(user=user)
    assert (change.source, change.actor, change.to_plan, change.reason) == (
        "admin", admin, "business", "partner",
    )  # fmt: skip
    account = BillingAccount.objects.get(user=user)
    response = client.post(
        f"/admin/billing/billingaccount/{account.pk}/change/",
        {"override_plan": "", "override_reason": ""},
    )
    assert response.status_code == 302
    assert selectors.user_entitlements(user=user).plan.key == "free"
    assert PlanChange.objects.filter(user=user).count() == 2


def test_an_override_needs_a_reason(admin_client_, user):
    client, _ = admin_client_
    response = client.post(
        "/admin/billing/billingaccount/add/",
        {"user": user.pk, "override_plan": "pro", "override_reason": ""},
    )
    assert response.status_code == 200
    assert "Say why the plan is overridden." in response.content.decode()
    assert not PlanChange.objects.exists()


def test_the_admin_lists_usage_and_dj_stripe_models(admin_client_, user):
    client, _ = admin_client_
    DailyUsage.objects.create(user=user, day=datetime.now(UTC).date(), calls=12)
    for url in (
        "/admin/billing/dailyusage/",
        "/admin/billing/planchange/",
        "/admin/billing/meterevent/",
        "/admin/billing/invoice/",
        "/admin/billing/billingaccount/",
        "/admin/djstripe/customer/",
        "/admin/djstripe/subscription/",
    ):
        assert client.get(url).status_code == 200, url
    assert user.email in client.get("/admin/billing/dailyusage/").content.decode()
