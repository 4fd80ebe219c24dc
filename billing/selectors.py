"""Reads: entitlements, the request path's limits, usage, plans, invoices."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet, Sum

from apex_site import throttling
from billing.models import BillingAccount, DailyUsage, Invoice, StripePrice
from billing.plans import FREE, PLANS, Plan, plan_get

# subscription states that keep the paid plan (past_due only within the grace)
_PAYING = {BillingAccount.Status.ACTIVE, BillingAccount.Status.TRIALING}


@dataclass(frozen=True)
class Entitlements:
    plan: Plan
    """What the user gets now."""
    subscribed_plan: Plan
    """What the subscription is for (Free without one)."""
    status: str
    """The subscription's status (``none`` without one)."""
    state: str
    """``free``, ``active``, ``grace`` (past due, plan kept), ``lapsed`` (past
    due beyond the grace, or canceled/unpaid: Free) or ``override``."""
    grace_until: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    stripe_customer_id: str = ""

    @property
    def past_due(self) -> bool:
        return self.status == BillingAccount.Status.PAST_DUE

    @property
    def status_label(self) -> str:
        if self.status in BillingAccount.Status.values:
            return str(BillingAccount.Status(self.status).label)
        return self.status


def billing_configured() -> bool:
    """Whether Stripe keys are set (else checkout and portal answer 503)."""
    return bool(settings.STRIPE_SECRET_KEY)


def entitlements_from(
    account: BillingAccount | None, *, now: datetime | None = None
) -> Entitlements:
    if account is None:
        return Entitlements(
            plan=FREE, subscribed_plan=FREE, status="none", state="free"
        )
    now = now or datetime.now(UTC)
    subscribed = plan_get(account.plan)
    common = {
        "subscribed_plan": subscribed,
        "status": account.status,
        "current_period_end": account.current_period_end,
        "cancel_at_period_end": account.cancel_at_period_end,
        "stripe_customer_id": account.stripe_customer_id,
    }
    if account.override_plan:
        return Entitlements(
            plan=plan_get(account.override_plan), state="override", **common
        )
    if account.status == BillingAccount.Status.NONE or subscribed == FREE:
        return Entitlements(plan=FREE, state="free", **common)
    if account.status in _PAYING:
        return Entitlements(plan=subscribed, state="active", **common)
    if account.status == BillingAccount.Status.PAST_DUE:
        since = account.past_due_since or now
        grace_until = since + timedelta(days=settings.APEX_BILLING_PAST_DUE_GRACE_DAYS)
        if now < grace_until:
            return Entitlements(
                plan=subscribed, state="grace", grace_until=grace_until, **common
            )
        return Entitlements(
            plan=FREE, state="lapsed", grace_until=grace_until, **common
        )
    return Entitlements(plan=FREE, state="lapsed", **common)


def billing_account(*, user_id: int) -> BillingAccount | None:
    return BillingAccount.objects.filter(user_id=user_id).first()


def user_entitlements(*, user, now: datetime | None = None) -> Entitlements:
    """The plan, limits and state of ``user`` (Free without a subscription)."""
    return entitlements_from(billing_account(user_id=user.pk), now=now)


# --------------------------------------------------------------- request path
_limits_cache: dict[int, tuple[float, int, throttling.Limits]] = {}
_limits_lock = threading.Lock()


def limits_for(plan: Plan, *, user_id: int) -> throttling.Limits:
    return throttling.Limits(
        subject=f"u{user_id}",
        user_id=user_id,
        rate_per_second=plan.rate_per_second,
        monthly_quota=plan.monthly_quota,
        hard_limit=plan.hard_limit,
    )


def user_limits(*, user_id: int) -> throttling.Limits:
    """The user's metered-call limits, kept in this process: the request path
    reads the database again after a change of limits anywhere (at the
    process's next metered call: ``throttling.limits_generation``) or after
    ``APEX_BILLING_ENTITLEMENTS_CACHE_SECONDS`` (what changes with time alone:
    the end of a past-due grace)."""
    now = time.monotonic()
    generation = throttling.limits_generation()  # before the read: see below
    cached = _limits_cache.get(user_id)
    if cached is not None and cached[0] > now and cached[1] == generation:
        return cached[2]
    limits = limits_for(
        entitlements_from(billing_account(user_id=user_id)).plan, user_id=user_id
    )
    # kept under the generation seen before the read: a change committed while
    # reading makes it stale at once
    limits_remember(user_id=user_id, limits=limits, generation=generation)
    return limits


def limits_remember(
    *, user_id: int, limits: throttling.Limits, generation: int | None = None
) -> None:
    seconds = settings.APEX_BILLING_ENTITLEMENTS_CACHE_SECONDS
    if generation is None:
        generation = throttling.limits_generation()
    if seconds:
        with _limits_lock:
            _limits_cache[user_id] = (time.monotonic() + seconds, generation, limits)


def limits_forget(*, user_id: int | None = None) -> None:
    with _limits_lock:
        if user_id is None:
            _limits_cache.clear()
        else:
            _limits_cache.pop(user_id, None)


def request_limits(request) -> str | throttling.Limits | None:
    """``APEX_PLAN_RATE_RESOLVER``: the plan's limits for a signed-in caller
    of a metered path; DRF's default rates for everything else."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not throttling.is_metered(request):
        return throttling.default_rate(request)
    return user_limits(user_id=user.pk)


# --------------------------------------------------------------------- usage
@dataclass(frozen=True)
class UsageDay:
    day: date
    calls: int


@dataclass(frozen=True)
class UsageSummary:
    plan: Plan
    period_start: datetime
    reset_at: datetime
    used: int
    quota: int
    remaining: int
    overage: int
    hard_limit: int
    days: list[UsageDay]

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.used / self.quota)) if self.quota else 100


def user_usage(*, user, now: datetime | None = None) -> UsageSummary:
    """This month's metered calls: the live counter, the quota, and a per-day
    series (rolled-up days from the database, today from the counter)."""
    now = now or datetime.now(UTC)
    plan = user_entitlements(user=user, now=now).plan
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    meter = throttling.meter()
    subject = f"u{user.pk}"
    used = meter.month_usage(subject, now)
    per_day = dict(
        DailyUsage.objects.filter(user=user, day__gte=start.date()).values_list(
            "day", "calls"
        )
    )
    per_day[now.date()] = max(per_day.get(now.date(), 0), meter.day_usage(subject, now))
    # a counter lost with Redis must not hand out a fresh quota in the report
    used = max(used, sum(per_day.values()))
    days = [
        UsageDay(
            start.date() + timedelta(days=i),
            per_day.get(start.date() + timedelta(days=i), 0),
        )
        for i in range((now.date() - start.date()).days + 1)
    ]
    return UsageSummary(
        plan=plan,
        period_start=start,
        reset_at=throttling.month_reset(now),
        used=used,
        quota=plan.monthly_quota,
        remaining=max(0, plan.monthly_quota - used),
        overage=max(0, used - plan.monthly_quota) if plan.metered else 0,
        hard_limit=plan.hard_limit,
        days=days,
    )


def usage_total(*, user_id: int, since: date) -> int:
    return (
        DailyUsage.objects.filter(user_id=user_id, day__gte=since).aggregate(
            total=Sum("calls")
        )["total"]
        or 0
    )


# ------------------------------------------------------------- plans, invoices
def plan_list() -> list[Plan]:
    return list(PLANS.values())


def plan_prices(*, plan: Plan) -> list[StripePrice]:
    """The synced Stripe prices of a paid plan (base first, then metered)."""
    return list(
        StripePrice.objects.filter(
            plan=plan.key, livemode=settings.STRIPE_LIVE_MODE
        ).order_by("metered", "lookup_key")
    )


def invoice_list(*, user) -> QuerySet[Invoice]:
    return Invoice.objects.filter(user=user)
