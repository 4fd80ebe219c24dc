"""Signed webhooks drive entitlements: each event type, a bad signature, a
replay, an out-of-order event."""

from __future__ import annotations

import time

import pytest
from django.core import mail

from billing import selectors
from billing.models import BillingAccount, Invoice, PlanChange
from billing.tests.conftest import subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer(user, stripe_api):
    """The user's Stripe customer, created through dj-stripe at stripe-mock."""
    from billing import services

    return services.customer_ensure(user=user)


def plan_of(user) -> str:
    return str(selectors.user_entitlements(user=user).plan.key)


def test_subscription_created_puts_the_user_on_the_plan(
    user, customer, post_event, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_event(
            "customer.subscription.created", subscription(customer=customer)
        )
    assert response.status_code == 200, response.content
    assert plan_of(user) == "pro"
    account = BillingAccount.objects.get(user=user)
    assert account.status == "active" and account.stripe_subscription_id == "sub_test_1"
    assert account.current_period_end is not None
    change = PlanChange.objects.get(user=user)
    assert (change.from_plan, change.to_plan, change.source) == (
        "free",
        "pro",
        "webhook",
    )
    assert change.stripe_event_id == response.event["id"]
    assert [m.subject for m in mail.outbox] == ["Your APEX plan is now Pro"]


def test_a_bad_signature_is_refused_and_changes_nothing(user, customer, post_event):
    response = post_event(
        "customer.subscription.created",
        subscription(customer=customer),
        secret="whsec_someone_else",
    )
    assert response.status_code == 400
    assert plan_of(user) == "free"
    assert not PlanChange.objects.exists()
    from djstripe.models import Event, WebhookEventTrigger

    assert not Event.objects.exists()
    assert WebhookEventTrigger.objects.get().valid is False


def test_an_old_signature_is_refused(user, customer, post_event):
    response = post_event(
        "customer.subscription.created",
        subscription(customer=customer),
        timestamp=int(time.time()) - 301,  # past the 300 s tolerance
    )
    assert response.status_code == 400
    assert plan_of(user) == "free"


def test_a_replayed_event_changes_nothing(
    user, customer, post_event, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = post_event(
            "customer.subscription.created", subscription(customer=customer)
        )
    with django_capture_on_commit_callbacks(execute=True):
        post_event(
            "customer.subscription.deleted",
            subscription(customer=customer, status="canceled"),
        )
    assert plan_of(user) == "free"
    # the first event again, freshly signed: dj-stripe has it, nothing runs
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = post_event("", {}, body=first.event)
    assert again.status_code == 200
    assert plan_of(user) == "free" and callbacks == []
    assert PlanChange.objects.filter(user=user).count() == 2


def test_the_service_alone_ignores_a_repeated_or_older_event(user, customer):
    from datetime import UTC, datetime, timedelta

    from billing import services

    now = datetime.now(UTC)
    services.subscription_apply(
        event_id="evt_2",
        event_created=now,
        subscription=subscription(customer=customer),
    )
    canceled = subscription(customer=customer, status="canceled")
    services.subscription_apply(
        event_id="evt_2", event_created=now, subscription=canceled
    )
    services.subscription_apply(
        event_id="evt_1",
        event_created=now - timedelta(seconds=5),
        subscription=canceled,
    )
    assert plan_of(user) == "pro"
    assert PlanChange.objects.count() == 1


@pytest.mark.parametrize(
    "status, expected_plan, state",
    [
        ("active", "pro", "active"),
        ("trialing", "pro", "active"),
        ("past_due", "pro", "grace"),
        ("unpaid", "free", "lapsed"),
        ("incomplete", "free", "lapsed"),
        ("incomplete_expired", "free", "lapsed"),
        ("canceled", "free", "lapsed"),
        ("paused", "free", "lapsed"),
    ],
)
def test_each_subscription_state_decides_the_entitlements(
    user, customer, post_event, status, expected_plan, state
):
    response = post_event(
        "customer.subscription.updated", subscription(customer=customer, status=status)
    )
    assert response.status_code == 200
    entitlements = selectors.user_entitlements(user=user)
    assert (str(entitlements.plan.key), entitlements.state) == (expected_plan, state)


def test_past_due_keeps_the_plan_for_the_grace_period_only(user, customer, post_event):
    from datetime import timedelta

    post_event(
        "customer.subscription.updated",
        subscription(customer=customer, status="past_due"),
    )
    account = BillingAccount.objects.get(user=user)
    assert account.past_due_since is not None
    later = account.past_due_since + timedelta(days=8)
    assert selectors.user_entitlements(user=user, now=later).plan.key == "free"
    # paid again: the clock is cleared
    post_event("customer.subscription.updated", subscription(customer=customer))
    account.refresh_from_db()
    assert account.past_due_since is None and plan_of(user) == "pro"


def test_deleted_subscription_falls_back_to_free(
    user, customer, post_event, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_event("customer.subscription.created", subscription(customer=customer))
        post_event(
            "customer.subscription.deleted",
            subscription(customer=customer, status="canceled"),
        )
    assert plan_of(user) == "free"
    assert [m.subject for m in mail.outbox] == [
        "Your APEX plan is now Pro",
        "Your APEX plan is now Free",
    ]


def test_the_plan_comes_from_the_metadata_when_the_price_is_unknown(
    user, customer, post_event
):
    sub = subscription(customer=customer, lookup_key=None, price_id="price_unknown")
    sub["metadata"] = {"apex_plan": "business"}
    post_event("customer.subscription.created", sub)
    assert plan_of(user) == "business"


def test_a_subscription_of_an_unknown_customer_is_acknowledged_and_ignored(
    user, post_event
):
    response = post_event(
        "customer.subscription.created", subscription(customer="cus_nobody")
    )
    assert response.status_code == 200
    assert not BillingAccount.objects.exists()


def test_checkout_completed_links_the_customer_but_grants_nothing(
    user, stripe_api, post_event
):
    response = post_event(
        "checkout.session.completed",
        {
            "id": "cs_test_1",
            "object": "checkout.session",
            "customer": "cus_from_checkout",
            "client_reference_id": str(user.pk),
            "mode": "subscription",
            "status": "complete",
        },
    )
    assert response.status_code == 200, response.content
    account = BillingAccount.objects.get(user=user)
    assert account.stripe_customer_id == "cus_from_checkout"
    assert plan_of(user) == "free"


def invoice(customer: str, *, status: str = "paid", invoice_id: str = "in_test_1"):
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": customer,
        "number": "APEX-0001",
        "status": status,
        "amount_due": 2900,
        "amount_paid": 2900 if status == "paid" else 0,
        "currency": "usd",
        "hosted_invoice_url": "https://invoice.stripe.com/i/test",
        "created": int(time.time()),
    }


def test_invoice_paid_is_kept_for_the_account_page(user, customer, post_event):
    response = post_event("invoice.paid", invoice(customer))
    assert response.status_code == 200, response.content
    row = Invoice.objects.get(user=user)
    assert (row.number, row.status, row.amount_paid) == ("APEX-0001", "paid", 2900)


def test_a_failed_payment_starts_the_grace_clock_and_emails_once(
    user, customer, post_event, django_capture_on_commit_callbacks
):
    post_event("customer.subscription.created", subscription(customer=customer))
    body = invoice(customer, status="open")
    with django_capture_on_commit_callbacks(execute=True):
        post_event("invoice.payment_failed", body)
        post_event("invoice.payment_failed", body)  # a new event, same invoice state
    assert Invoice.objects.get(user=user).status == "payment_failed"
    assert BillingAccount.objects.get(user=user).past_due_since is not None
    assert [m.subject for m in mail.outbox].count("Your APEX payment failed") == 1
