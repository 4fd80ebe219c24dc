"""Billing fixtures: Stripe is stripe-mock, state changes are signed webhooks.

stripe-mock checks every request against Stripe's API specification but keeps
no state, so the tests drive subscriptions the way Stripe does: by posting
events signed with the endpoint's secret to the real webhook URL.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

WEBHOOK_SECRET = "whsec_apex_tests"
_ids = itertools.count(1)


TEST_KEY = "sk_test_apexbillingtestsuite000000"


@pytest.fixture
def stripe_api(settings, stripe_mock_url, db):
    """Billing configured against stripe-mock (a test key, the mock's host).

    dj-stripe finds the account that owns every object it syncs through
    ``GET /v1/account``; stripe-mock answers that with a new random id each
    time, and dj-stripe then recurses (each new account is itself synced and
    looks up its owner again). So the key's account is stored up front, as
    dj-stripe would have stored it after its first call to real Stripe.
    """
    from djstripe.models import Account, APIKey

    old_base = stripe.api_base
    settings.STRIPE_SECRET_KEY = TEST_KEY
    settings.STRIPE_API_HOST = stripe_mock_url
    stripe.api_base = stripe_mock_url  # dj-stripe's module-level calls
    account = Account.objects.create(id="acct_apextest", livemode=False)
    APIKey.objects.create(
        secret=TEST_KEY, type="secret", livemode=False, djstripe_owner_account=account
    )
    try:
        yield stripe_mock_url
    finally:
        stripe.api_base = old_base


@pytest.fixture
def no_stripe(settings):
    """The embedded default: no Stripe keys."""
    settings.STRIPE_SECRET_KEY = ""
    return settings


@pytest.fixture
def synced_plans(stripe_api, db):
    from billing import services

    return services.plans_sync()


@pytest.fixture
def webhook_endpoint(stripe_api, db):
    """Our endpoint, registered through the API (stripe-mock's answer has no
    signing secret, so the test sets the one it signs with)."""
    from billing import services

    endpoint = services.webhook_endpoint_create(base_url="https://apex.example")
    endpoint.secret = WEBHOOK_SECRET
    endpoint.save(update_fields=["secret"])
    return endpoint


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None):
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(
        secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_body(
    event_type: str,
    obj: dict,
    *,
    event_id: str | None = None,
    created: int | None = None,
) -> dict:
    return {
        "id": event_id or f"evt_test_{next(_ids)}_{int(time.time() * 1000)}",
        "object": "event",
        "api_version": "2026-05-27.dahlia",
        "created": created or int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


@pytest.fixture
def post_event(client, webhook_endpoint) -> Callable[..., Any]:
    """Sign an event with the endpoint's secret and post it to the webhook URL
    (returns the response; the event body is ``response.event``)."""
    url = f"/stripe/webhook/{webhook_endpoint.djstripe_uuid}/"

    def post(
        event_type: str,
        obj: dict,
        *,
        event_id: str | None = None,
        created: int | None = None,
        secret: str = WEBHOOK_SECRET,
        timestamp: int | None = None,
        body: dict | None = None,
    ):
        body = body or event_body(event_type, obj, event_id=event_id, created=created)
        payload = json.dumps(body)
        response = client.post(
            url,
            payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=sign(payload, secret, timestamp),
        )
        response.event = body
        return response

    return post


def subscription(
    *,
    customer: str,
    status: str = "active",
    price_id: str = "price_pro",
    lookup_key: str | None = "apex_pro_monthly",
    sub_id: str = "sub_test_1",
    user_id: int | None = None,
    cancel_at_period_end: bool = False,
) -> dict:
    now = int(datetime.now(UTC).timestamp())
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "cancel_at_period_end": cancel_at_period_end,
        "metadata": {"apex_user_id": str(user_id)} if user_id else {},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_test_1",
                    "object": "subscription_item",
                    "price": {
                        "id": price_id,
                        "object": "price",
                        "lookup_key": lookup_key,
                    },
                    "quantity": 1,
                    "current_period_start": now - 86400,
                    "current_period_end": now + 29 * 86400,
                }
            ],
        },
    }


def stripe_checkout_stand_in(page) -> list[str]:
    """Answer the browser's redirect to Stripe Checkout (no internet here)
    with a stand-in page; returns the list of URLs it answered."""
    seen: list[str] = []

    def answer(route) -> None:
        seen.append(route.request.url)
        route.fulfill(
            status=200,
            content_type="text/html",
            body="<title>Stripe Checkout</title><h1>Pay for APEX Pro</h1>",
        )

    page.route(re.compile(r"^https://checkout\.stripe\.com/.*"), answer)
    return seen
