"""Writes: Checkout and Portal sessions, what the webhooks say, the admin's
override, the usage roll-up, meter reporting and the plan sync.

Only the webhook services (``subscription_apply``, ``checkout_completed``,
``invoice_record``) and the admin's ``plan_override`` change what a user is
entitled to; the Checkout success redirect changes nothing. Each webhook
service is idempotent — a replayed or older event changes nothing — and its
side effects (forgetting cached limits, the signal, the email) run after the
commit.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import stripe
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F

from apex_site import throttling
from apex_site.errors import ApplicationError
from billing import selectors
from billing.errors import BillingErrorCode
from billing.models import (
    BillingAccount,
    DailyUsage,
    Invoice,
    MeterEvent,
    PlanChange,
    StripePrice,
)
from billing.plans import PLANS, Plan, PlanKey, plan_get
from billing.signals import entitlements_changed
from billing.stripe_api import stripe_client, stripe_failure

logger = logging.getLogger(__name__)

WEBHOOK_EVENTS = [
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
]


def _plain(obj: Any) -> dict:
    """A StripeObject as plain JSON data (stripe-python gives decimals as
    ``Decimal``; dj-stripe stores JSON)."""
    return json.loads(json.dumps(obj.to_dict(), default=str))


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def _id(value: Any) -> str:
    """A Stripe reference: an id, or an expanded object's id."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


# ------------------------------------------------------------- customers
def customer_ensure(*, user) -> str:
    """The user's Stripe customer id, created through dj-stripe (the customer's
    metadata carries the subscriber key, ``djstripe_subscriber``)."""
    from djstripe.models import Customer

    account = selectors.billing_account(user_id=user.pk)
    if account is not None and account.stripe_customer_id:
        return account.stripe_customer_id
    try:
        customer, _ = Customer.get_or_create(
            subscriber=user, livemode=settings.STRIPE_LIVE_MODE
        )
    except stripe.StripeError as error:
        raise stripe_failure(error) from error
    with transaction.atomic():
        account, _ = BillingAccount.objects.select_for_update().get_or_create(
            user_id=user.pk
        )
        if not account.stripe_customer_id:
            account.stripe_customer_id = customer.id
            account.save(update_fields=["stripe_customer_id", "updated_at"])
    return account.stripe_customer_id


# ------------------------------------------------------- checkout + portal
def checkout_session_create(
    *, user, plan_key: str, success_url: str, cancel_url: str
) -> str:
    """A Checkout Session for a paid plan; returns its URL."""
    try:
        plan = PLANS[PlanKey(plan_key)]
    except ValueError:
        raise ApplicationError(
            f"There is no plan {plan_key!r}.",
            code=BillingErrorCode.UNKNOWN_PLAN,
            detail={"plans": [str(k) for k in PLANS]},
        ) from None
    if not plan.paid:
        raise ApplicationError(
            f"The {plan.name} plan needs no checkout.",
            code=BillingErrorCode.PLAN_NOT_PURCHASABLE,
        )
    client = stripe_client()
    entitlements = selectors.user_entitlements(user=user)
    if entitlements.state in ("active", "grace") and entitlements.subscribed_plan.paid:
        raise ApplicationError(
            "You already have a subscription: change it in the billing portal.",
            code=BillingErrorCode.ALREADY_SUBSCRIBED,
            status_code=409,
        )
    prices = selectors.plan_prices(plan=plan)
    if not prices:
        raise ApplicationError(
            "The plans are not synced with Stripe yet (manage.py billing_sync_plans).",
            code=BillingErrorCode.NOT_CONFIGURED,
            status_code=503,
        )
    customer_id = customer_ensure(user=user)
    line_items: list[dict[str, Any]] = [
        {"price": p.stripe_price_id}
        if p.metered
        else {"price": p.stripe_price_id, "quantity": 1}
        for p in prices
    ]
    metadata = {"apex_user_id": str(user.pk), "apex_plan": str(plan.key)}
    try:
        session = client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "customer": customer_id,
                "client_reference_id": str(user.pk),
                "line_items": line_items,
                "success_url": success_url,
                "cancel_url": cancel_url,
                "metadata": metadata,
                "subscription_data": {"metadata": metadata},
            }
        )
    except stripe.StripeError as error:
        raise stripe_failure(error) from error
    logger.info(
        "checkout session created",
        extra={"user_id": user.pk, "plan": str(plan.key), "session": session.id},
    )
    return str(session.url)


def portal_session_create(*, user, return_url: str) -> str:
    """A Customer Portal session for the user's Stripe customer; returns its URL."""
    client = stripe_client()
    account = selectors.billing_account(user_id=user.pk)
    if account is None or not account.stripe_customer_id:
        raise ApplicationError(
            "You have no billing account yet: choose a paid plan first.",
            code=BillingErrorCode.NO_CUSTOMER,
            status_code=409,
        )
    try:
        session = client.v1.billing_portal.sessions.create(
            params={"customer": account.stripe_customer_id, "return_url": return_url}
        )
    except stripe.StripeError as error:
        raise stripe_failure(error) from error
    return str(session.url)


# ----------------------------------------------------------------- webhooks
def _user_for(*, customer_id: str, metadata: dict | None) -> int | None:
    """The user a Stripe object belongs to: the account that holds the
    customer, else our metadata, else dj-stripe's subscriber link."""
    if customer_id:
        found = (
            BillingAccount.objects.filter(stripe_customer_id=customer_id)
            .values_list("user_id", flat=True)
            .first()
        )
        if found:
            return found
    raw = (metadata or {}).get("apex_user_id")
    if raw and str(raw).isdigit():
        if get_user_model().objects.filter(pk=int(raw)).exists():
            return int(raw)
    if customer_id:
        from djstripe.models import Customer

        return (
            Customer.objects.filter(id=customer_id, subscriber__isnull=False)
            .values_list("subscriber_id", flat=True)
            .first()
        )
    return None


def _plan_of(subscription: dict) -> Plan | None:
    """The plan a subscription is for: its base price's lookup key (or the
    price id we synced), else our metadata."""
    by_key = {p.price_lookup_key: p for p in PLANS.values()}
    items = (subscription.get("items") or {}).get("data") or []
    price_ids = []
    for item in items:
        price = item.get("price") or {}
        if price.get("lookup_key") in by_key:
            return by_key[price["lookup_key"]]
        price_ids.append(_id(price))
    synced = (
        StripePrice.objects.filter(stripe_price_id__in=price_ids, metered=False)
        .values_list("plan", flat=True)
        .first()
    )
    if synced:
        return plan_get(synced)
    key = (subscription.get("metadata") or {}).get("apex_plan")
    return PLANS.get(PlanKey(key)) if key in PLANS else None


def _period(subscription: dict) -> tuple[datetime | None, datetime | None]:
    """The current period (top level before API 2025-03-31, on items since)."""
    start = subscription.get("current_period_start")
    end = subscription.get("current_period_end")
    items = (subscription.get("items") or {}).get("data") or []
    if not end and items:
        start = items[0].get("current_period_start")
        end = items[0].get("current_period_end")
    return _ts(start), _ts(end)


def _announce(user_id: int, before: selectors.Entitlements, account) -> None:
    """After the commit: forget cached limits, send the signal, email."""
    after = selectors.entitlements_from(account)

    def run() -> None:
        selectors.limits_forget(user_id=user_id)
        throttling.limits_changed()  # and every other process's copy
        entitlements_changed.send_robust(
            sender=None, user_id=user_id, plan=str(after.plan.key), state=after.state
        )
        if after.plan != before.plan:
            _email(
                user_id,
                f"Your APEX plan is now {after.plan.name}",
                f"Your plan changed from {before.plan.name} to {after.plan.name}. "
                f"It includes {after.plan.monthly_quota:,} API calls a month.",
            )

    transaction.on_commit(run)


def _email(user_id: int, subject: str, body: str) -> None:
    email = (
        get_user_model()
        .objects.filter(pk=user_id)
        .values_list("email", flat=True)
        .first()
    )
    if not email:
        return
    try:
        send_mail(subject, body, None, [email])
    except Exception:  # a mail outage must not undo a payment's effect
        logger.warning(
            "billing email failed", exc_info=True, extra={"user_id": user_id}
        )


def _is_stale(account: BillingAccount, event_id: str, created: datetime) -> bool:
    if event_id and account.last_event_id == event_id:
        return True
    return bool(account.last_event_created and created < account.last_event_created)


@transaction.atomic
def subscription_apply(
    *, event_id: str, event_created: datetime, subscription: dict
) -> BillingAccount | None:
    """Apply a ``customer.subscription.*`` event's subscription to its user.

    A replayed event, or one older than the last applied, changes nothing.
    """
    customer_id = _id(subscription.get("customer"))
    user_id = _user_for(customer_id=customer_id, metadata=subscription.get("metadata"))
    if user_id is None:
        logger.warning(
            "subscription for an unknown customer ignored",
            extra={"event_id": event_id, "customer": customer_id},
        )
        return None
    account, _ = BillingAccount.objects.select_for_update().get_or_create(
        user_id=user_id
    )
    if _is_stale(account, event_id, event_created):
        logger.info(
            "stale or replayed subscription event", extra={"event_id": event_id}
        )
        return account
    before = selectors.entitlements_from(account)
    old_plan, old_status = account.plan, account.status
    plan = _plan_of(subscription) or plan_get(account.plan)
    status = str(subscription.get("status") or BillingAccount.Status.NONE)
    if status not in BillingAccount.Status.values:
        status = BillingAccount.Status.INCOMPLETE
    account.plan = plan.key
    account.status = status
    account.stripe_customer_id = customer_id or account.stripe_customer_id
    account.stripe_subscription_id = _id(subscription.get("id"))
    account.current_period_start, account.current_period_end = _period(subscription)
    account.cancel_at_period_end = bool(subscription.get("cancel_at_period_end"))
    if status == BillingAccount.Status.PAST_DUE:
        account.past_due_since = account.past_due_since or event_created
    else:
        account.past_due_since = None
    account.last_event_id = event_id
    account.last_event_created = event_created
    account.save()
    if (old_plan, old_status) != (account.plan, account.status):
        PlanChange.objects.create(
            user_id=user_id,
            source=PlanChange.Source.WEBHOOK,
            stripe_event_id=event_id,
            from_plan=old_plan,
            to_plan=account.plan,
            from_status=old_status,
            to_status=account.status,
        )
    _announce(user_id, before, account)
    return account


@transaction.atomic
def checkout_completed(*, event_id: str, session: dict) -> BillingAccount | None:
    """Link the session's customer to its user (``client_reference_id``).
    Entitlements come from the subscription events, not from this one."""
    customer_id = _id(session.get("customer"))
    raw = session.get("client_reference_id") or (session.get("metadata") or {}).get(
        "apex_user_id"
    )
    if not customer_id or not raw or not str(raw).isdigit():
        return None
    user_id = int(raw)
    if not get_user_model().objects.filter(pk=user_id).exists():
        logger.warning("checkout for an unknown user", extra={"event_id": event_id})
        return None
    account, _ = BillingAccount.objects.select_for_update().get_or_create(
        user_id=user_id
    )
    if not account.stripe_customer_id:
        account.stripe_customer_id = customer_id
        account.save(update_fields=["stripe_customer_id", "updated_at"])
    return account


@transaction.atomic
def invoice_record(*, event_id: str, invoice: dict, failed: bool) -> Invoice | None:
    """Keep the invoice for the account page; a failed payment starts the
    past-due grace clock and is emailed (once per invoice state)."""
    customer_id = _id(invoice.get("customer"))
    user_id = _user_for(customer_id=customer_id, metadata=invoice.get("metadata"))
    if user_id is None or not invoice.get("id"):
        return None
    status = "payment_failed" if failed else str(invoice.get("status") or "paid")
    existing = (
        Invoice.objects.select_for_update()
        .filter(stripe_invoice_id=invoice["id"])
        .first()
    )
    changed = existing is None or existing.status != status
    row, _ = Invoice.objects.update_or_create(
        stripe_invoice_id=invoice["id"],
        defaults={
            "user_id": user_id,
            "number": invoice.get("number") or "",
            "status": status,
            "amount_due": int(invoice.get("amount_due") or 0),
            "amount_paid": int(invoice.get("amount_paid") or 0),
            "currency": invoice.get("currency") or "usd",
            "hosted_invoice_url": invoice.get("hosted_invoice_url") or "",
            "created": _ts(invoice.get("created")) or datetime.now(UTC),
        },
    )
    if failed and changed:
        account, _ = BillingAccount.objects.select_for_update().get_or_create(
            user_id=user_id
        )
        if account.past_due_since is None:
            account.past_due_since = datetime.now(UTC)
            account.save(update_fields=["past_due_since", "updated_at"])
        transaction.on_commit(
            lambda: _email(
                user_id,
                "Your APEX payment failed",
                "We could not charge your card. Update it in the billing portal; "
                f"your plan stays for {settings.APEX_BILLING_PAST_DUE_GRACE_DAYS} "
                "days.",
            )
        )
    return row


# ------------------------------------------------------------------- admin
@transaction.atomic
def plan_override(
    *, user_id: int, plan_key: str | None, actor_id: int | None, reason: str
) -> BillingAccount:
    """Set (or, with ``plan_key=None``, clear) a manual plan; audited."""
    if plan_key and plan_key not in PLANS:
        raise ApplicationError(
            f"There is no plan {plan_key!r}.", code=BillingErrorCode.UNKNOWN_PLAN
        )
    account, _ = BillingAccount.objects.select_for_update().get_or_create(
        user_id=user_id
    )
    before = selectors.entitlements_from(account)
    account.override_plan = plan_key or ""
    account.override_reason = reason if plan_key else ""
    account.save()
    after = selectors.entitlements_from(account)
    PlanChange.objects.create(
        user_id=user_id,
        source=PlanChange.Source.ADMIN,
        actor_id=actor_id,
        from_plan=before.plan.key,
        to_plan=after.plan.key,
        from_status=account.status,
        to_status=account.status,
        reason=reason or ("override cleared" if not plan_key else ""),
    )
    _announce(user_id, before, account)
    return account


# ------------------------------------------------------------------ usage
def usage_rollup(*, now: datetime | None = None, days_back: int = 1) -> int:
    """Copy the meter's day counters (today and ``days_back`` days before)
    into ``DailyUsage``; returns the rows written. A counter only raises a
    row (a Redis that lost its data never lowers what was counted)."""
    now = now or datetime.now(UTC)
    written = 0
    user_model = get_user_model()
    for back in range(days_back + 1):
        day = (now - timedelta(days=back)).date()
        counts = throttling.meter().day_counts(day)
        if not counts:
            continue
        live = set(
            user_model.objects.filter(pk__in=counts).values_list("pk", flat=True)
        )
        counts = {u: c for u, c in counts.items() if u in live}
        with transaction.atomic():
            DailyUsage.objects.bulk_create(
                [DailyUsage(user_id=u, day=day, calls=0) for u in counts],
                ignore_conflicts=True,
            )
            for user_id, calls in counts.items():
                written += DailyUsage.objects.filter(
                    user_id=user_id, day=day, calls__lt=calls
                ).update(calls=calls, updated_at=now)
    return written


def _day_timestamp(day: date, now: datetime) -> datetime:
    return min(now, datetime.combine(day, time(23, 59, 59), tzinfo=UTC))


def meter_events_prepare(*, now: datetime | None = None) -> int:
    """Turn unreported usage of metered-plan users into pending meter events.

    In one transaction per user: a ``MeterEvent`` for each day's calls above
    the watermark, with an identifier made of the user, the day and the range
    of calls it covers, and the watermark moved up. A range is never covered
    twice, so the units Stripe receives add up to the calls counted.
    """
    now = now or datetime.now(UTC)
    metered = [p.key for p in PLANS.values() if p.metered]
    accounts = BillingAccount.objects.filter(plan__in=metered).exclude(
        stripe_customer_id=""
    )
    created = 0
    for account in accounts:
        entitlements = selectors.entitlements_from(account, now=now)
        # a metered subscription, paid or within its grace (not an override)
        if entitlements.state not in ("active", "grace"):
            continue
        since = (account.current_period_start or now - timedelta(days=31)).date()
        with transaction.atomic():
            rows = DailyUsage.objects.select_for_update().filter(
                user_id=account.user_id,
                day__gte=since,
                calls__gt=F("reported_calls"),
            )
            for row in rows:
                MeterEvent.objects.create(
                    user_id=account.user_id,
                    identifier=(
                        f"apex-u{account.user_id}-{row.day:%Y%m%d}-"
                        f"{row.reported_calls}-{row.calls}"
                    ),
                    stripe_customer_id=account.stripe_customer_id,
                    value=row.calls - row.reported_calls,
                    day=row.day,
                    timestamp=_day_timestamp(row.day, now),
                )
                row.reported_calls = row.calls
                row.save(update_fields=["reported_calls", "updated_at"])
                created += 1
    return created


def _is_duplicate(error: stripe.StripeError) -> bool:
    """Stripe refuses a meter event whose identifier it already has: it was
    delivered by an earlier try whose answer we never saw."""
    message = str(getattr(error, "user_message", "") or error).lower()
    return "identifier" in message and ("already" in message or "duplicate" in message)


def meter_events_send(
    *, client: Any = None, now: datetime | None = None, limit: int = 1000
) -> tuple[int, int]:
    """Send pending meter events, oldest first; returns (sent, failed). A
    failure stays pending (attempts and the error recorded) for the next run,
    which sends the same identifier again."""
    client = client or stripe_client()
    now = now or datetime.now(UTC)
    sent = failed = 0
    pending = MeterEvent.objects.filter(sent_at__isnull=True).order_by("id")[:limit]
    for event in pending:
        params = {
            "event_name": settings.APEX_BILLING_METER_EVENT_NAME,
            "identifier": event.identifier,
            "payload": {
                "stripe_customer_id": event.stripe_customer_id,
                "value": str(event.value),
            },
            "timestamp": int(event.timestamp.timestamp()),
        }
        try:
            client.v1.billing.meter_events.create(params=params)
        except stripe.StripeError as error:
            if not _is_duplicate(error):
                MeterEvent.objects.filter(pk=event.pk).update(
                    attempts=F("attempts") + 1, last_error=str(error)[:500]
                )
                failed += 1
                logger.warning(
                    "meter event not sent; retried next run",
                    extra={"identifier": event.identifier, "error": str(error)},
                )
                continue
        MeterEvent.objects.filter(pk=event.pk).update(
            sent_at=now, attempts=F("attempts") + 1, last_error=""
        )
        sent += 1
    return sent, failed


def meter_report(*, client: Any = None) -> dict[str, int]:
    """The beat job: prepare, then send what is pending."""
    prepared = meter_events_prepare()
    if client is None and not selectors.billing_configured():
        return {"prepared": prepared, "sent": 0, "failed": 0}
    sent, failed = meter_events_send(client=client)
    return {"prepared": prepared, "sent": sent, "failed": failed}


# --------------------------------------------------------------- plan sync
def _price_params(plan: Plan, *, metered: bool, product: str, meter_id: str) -> dict:
    if not metered:
        return {
            "product": product,
            "currency": "usd",
            "unit_amount": plan.price_cents,
            "recurring": {"interval": "month"},
            "lookup_key": plan.price_lookup_key,
            "nickname": f"{plan.name} monthly",
        }
    assert plan.overage_cents_per_1000 is not None
    return {
        "product": product,
        "currency": "usd",
        "recurring": {"interval": "month", "usage_type": "metered", "meter": meter_id},
        "billing_scheme": "tiered",
        "tiers_mode": "graduated",
        "tiers": [
            {"up_to": plan.monthly_quota, "unit_amount": 0},
            {
                "up_to": "inf",
                "unit_amount_decimal": str(plan.overage_cents_per_1000 / 1000),
            },
        ],
        "lookup_key": plan.metered_lookup_key,
        "nickname": f"{plan.name} calls",
    }


def _price_matches(price: Any, params: dict) -> bool:
    if price.get("lookup_key") != params["lookup_key"] or not price.get("active"):
        return False
    if "unit_amount" in params and price.get("unit_amount") != params["unit_amount"]:
        return False
    return _id(price.get("product")) == params["product"]


def _meter_ensure(client: stripe.StripeClient) -> str:
    name = settings.APEX_BILLING_METER_EVENT_NAME
    for meter in client.v1.billing.meters.list(params={"status": "active"}).data:
        if meter.get("event_name") == name:
            return str(meter.id)
    meter = client.v1.billing.meters.create(
        params={
            "display_name": "APEX API calls",
            "event_name": name,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {
                "type": "by_id",
                "event_payload_key": "stripe_customer_id",
            },
            "value_settings": {"event_payload_key": "value"},
        }
    )
    return str(meter.id)


def _product_ensure(client: stripe.StripeClient, plan: Plan) -> Any:
    fields = {
        "name": f"APEX {plan.name}",
        "description": plan.description,
        "metadata": {"apex_plan": str(plan.key)},
    }
    try:
        client.v1.products.retrieve(plan.product_id)
    except stripe.InvalidRequestError as error:
        if error.http_status != 404:
            raise
        return client.v1.products.create(params={"id": plan.product_id, **fields})
    return client.v1.products.update(plan.product_id, params=fields)


def _price_ensure(client: stripe.StripeClient, params: dict) -> Any:
    found = client.v1.prices.list(
        params={"lookup_keys": [params["lookup_key"]], "active": True}
    ).data
    for price in found:
        if _price_matches(price, params):
            return price
    # a new price takes the lookup key over from the old one
    return client.v1.prices.create(params={**params, "transfer_lookup_key": True})


def plans_sync() -> list[StripePrice]:
    """Create or update the Stripe meter, products and prices of the paid
    plans (found by id and lookup key, so running it again changes nothing
    that is already right), mirror them into dj-stripe's models and record
    the price ids Checkout uses."""
    from djstripe.models import Price as DjPrice
    from djstripe.models import Product as DjProduct

    client = stripe_client()
    try:
        meter_id = _meter_ensure(client)
        synced = []
        for plan in PLANS.values():
            if not plan.paid:
                continue
            product = _product_ensure(client, plan)
            DjProduct.sync_from_stripe_data(_plain(product))
            for metered in (False, True) if plan.metered else (False,):
                params = _price_params(
                    plan, metered=metered, product=plan.product_id, meter_id=meter_id
                )
                price = _price_ensure(client, params)
                DjPrice.sync_from_stripe_data(_plain(price))
                row, _ = StripePrice.objects.update_or_create(
                    lookup_key=params["lookup_key"],
                    livemode=settings.STRIPE_LIVE_MODE,
                    defaults={
                        "plan": plan.key,
                        "metered": metered,
                        "stripe_price_id": price.id,
                        "stripe_product_id": plan.product_id,
                    },
                )
                synced.append(row)
    except stripe.StripeError as error:
        raise stripe_failure(error) from error
    return synced


def webhook_endpoint_create(*, base_url: str) -> Any:
    """Register our webhook URL at Stripe (dj-stripe's ``WebhookEndpoint``,
    its secret kept) for the events we handle."""
    from uuid import uuid4

    from djstripe.models import WebhookEndpoint

    client = stripe_client()
    uuid = uuid4()
    url = f"{base_url.rstrip('/')}/stripe/webhook/{uuid}/"
    try:
        data = client.v1.webhook_endpoints.create(
            params={
                "url": url,
                "enabled_events": WEBHOOK_EVENTS,
                "api_version": settings.STRIPE_API_VERSION,
                "metadata": {"djstripe_uuid": str(uuid)},
            }
        )
    except stripe.StripeError as error:
        raise stripe_failure(error) from error
    data = _plain(data)
    data["url"] = url  # what we asked for (a mock answers with its own)
    data["metadata"] = {"djstripe_uuid": str(uuid)}
    endpoint = WebhookEndpoint.sync_from_stripe_data(data)
    if data.get("secret") and endpoint.secret != data["secret"]:
        endpoint.secret = data["secret"]
        endpoint.save(update_fields=["secret"])
    return endpoint
