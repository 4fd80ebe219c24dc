"""From the pricing page to Stripe Checkout and back, in a real Chromium: the
plan shows once a signed webhook says so (the open tab picks it up by itself).

Checkout's own page is on the internet; the browser's request to it is
answered by a stand-in page here (Playwright's routing), after our server
created the session at stripe-mock.
"""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from playwright.sync_api import expect

from billing.models import BillingAccount
from billing.tests.conftest import (
    event_body,
    sign,
    stripe_checkout_stand_in,
    subscription,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def post_webhook(live_server, endpoint, event_type: str, obj: dict) -> int:
    payload = json.dumps(event_body(event_type, obj))
    request = urllib.request.Request(
        f"{live_server.url}/stripe/webhook/{endpoint.djstripe_uuid}/",
        data=payload.encode(),
        headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload)},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def test_pricing_to_checkout_and_back_to_the_new_plan(
    browser_page, live_server, synced_plans, webhook_endpoint
):
    page = browser_page
    seen_checkout = stripe_checkout_stand_in(page)

    page.goto(f"{live_server.url}/accounts/signup/")
    page.get_by_label("Email address").fill("ada@example.com")
    page.get_by_label(re.compile(r"^Password\W*$")).fill("a long and happy passphrase")
    page.get_by_label("Password confirmation").fill("a long and happy passphrase")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{live_server.url}/")

    page.get_by_role("link", name="Pricing").click()
    page.get_by_role("button", name="Choose Pro").click()
    page.wait_for_url(re.compile(r"^https://checkout\.stripe\.com/"))
    assert "Pay for APEX Pro" in page.content()
    assert len(seen_checkout) == 1

    # Stripe sends the customer back to the success URL: nothing has changed yet
    page.goto(f"{live_server.url}/accounts/billing/?checkout=success")
    assert page.get_by_test_id("current-plan").inner_text() == "Free"
    assert "as soon as Stripe confirms" in page.content()

    # ... until the signed webhook arrives; the open tab shows it by itself
    account = BillingAccount.objects.get(user__email="ada@example.com")
    status = post_webhook(
        live_server,
        webhook_endpoint,
        "customer.subscription.created",
        subscription(customer=account.stripe_customer_id),
    )
    assert status == 200
    # a locator, not wait_for_function: the CSP forbids the eval it polls with
    expect(page.get_by_test_id("current-plan")).to_have_text("Pro", timeout=15_000)
    assert "of 100,000 calls used this month" in page.content()
