"""The roll-up of the meter's counters into daily rows, and meter events to
Stripe: a stable identifier per range of calls, failures retried, never
counted twice."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import stripe

from apex_site import throttling
from billing import selectors, services
from billing.models import BillingAccount, DailyUsage, MeterEvent
from billing.plans import PRO

pytestmark = pytest.mark.django_db
NOW = datetime.now(UTC).replace(hour=12)


def count_calls(user, n: int, when: datetime = NOW) -> None:
    limits = selectors.limits_for(PRO, user_id=user.pk)
    limits = throttling.Limits(**{**limits.__dict__, "rate_per_second": 10**6})
    for _ in range(n):
        assert throttling.meter().hit(limits, when).outcome == 0


@pytest.fixture
def pro_user(user):
    BillingAccount.objects.create(
        user=user,
        plan="pro",
        status="active",
        stripe_customer_id="cus_pro",
        current_period_start=NOW - timedelta(days=3),
    )
    return user


class FakeStripe:
    """Stripe's meter-event endpoint as the reporter sees it: it keeps every
    identifier (Stripe refuses a repeated one), and fails on command — before
    the event is stored, or after (the answer is lost)."""

    def __init__(self, *, fail_before=0.0, fail_after=0.0, seed=7) -> None:
        self.received: dict[str, int] = {}
        self.calls = 0
        self.random = random.Random(seed)
        self.fail_before, self.fail_after = fail_before, fail_after
        self.v1 = SimpleNamespace(
            billing=SimpleNamespace(meter_events=SimpleNamespace(create=self.create))
        )

    def create(self, *, params):
        self.calls += 1
        if self.random.random() < self.fail_before:
            raise stripe.APIConnectionError("connection reset")
        if params["identifier"] in self.received:
            raise stripe.InvalidRequestError(
                f"An event with identifier {params['identifier']} already exists.",
                "identifier",
            )
        self.received[params["identifier"]] = int(params["payload"]["value"])
        if self.random.random() < self.fail_after:
            raise stripe.APIConnectionError("timeout reading the answer")
        return params

    @property
    def units(self) -> int:
        return sum(self.received.values())


def test_the_rollup_copies_the_day_counters_and_is_idempotent(user, pro_user):
    count_calls(user, 5)
    count_calls(user, 2, NOW - timedelta(days=1))
    assert services.usage_rollup(now=NOW) == 2
    assert services.usage_rollup(now=NOW) == 0  # nothing new
    rows = dict(DailyUsage.objects.values_list("day", "calls"))
    assert rows == {NOW.date(): 5, (NOW - timedelta(days=1)).date(): 2}
    count_calls(user, 1)
    services.usage_rollup(now=NOW)
    assert DailyUsage.objects.get(day=NOW.date()).calls == 6


def test_the_rollup_never_lowers_a_day(user):
    DailyUsage.objects.create(user=user, day=NOW.date(), calls=50)
    count_calls(user, 3)  # a Redis that lost its data counts from zero
    services.usage_rollup(now=NOW)
    assert DailyUsage.objects.get(day=NOW.date()).calls == 50


def test_usage_shows_rolled_up_days(user):
    DailyUsage.objects.create(user=user, day=NOW.date().replace(day=1), calls=40)
    usage = selectors.user_usage(user=user, now=NOW)
    assert usage.days[0].calls == 40 and usage.used >= 40


def test_meter_events_cover_each_call_once_with_stable_identifiers(user, pro_user):
    count_calls(user, 7)
    services.usage_rollup(now=NOW)
    assert services.meter_events_prepare(now=NOW) == 1
    assert services.meter_events_prepare(now=NOW) == 0
    count_calls(user, 3)
    services.usage_rollup(now=NOW)
    services.meter_events_prepare(now=NOW)
    day = f"{NOW:%Y%m%d}"
    assert list(
        MeterEvent.objects.order_by("id").values_list("identifier", "value")
    ) == [
        (f"apex-u{user.pk}-{day}-0-7", 7),
        (f"apex-u{user.pk}-{day}-7-10", 3),
    ]


def test_free_users_are_not_reported(user):
    BillingAccount.objects.create(user=user, stripe_customer_id="cus_free")
    count_calls(user, 4)
    services.usage_rollup(now=NOW)
    assert services.meter_events_prepare(now=NOW) == 0


@pytest.mark.parametrize("fail_before, fail_after", [(0.5, 0.0), (0.3, 0.3)])
def test_failures_are_retried_and_nothing_is_billed_twice(
    user, pro_user, fail_before, fail_after
):
    fake = FakeStripe(fail_before=fail_before, fail_after=fail_after)
    total = 0
    for round_ in range(20):
        n = 1 + round_ % 4
        count_calls(user, n)
        total += n
        services.usage_rollup(now=NOW)
        services.meter_report(client=fake)
    for _ in range(30):  # the beat keeps running until the outbox is empty
        services.meter_report(client=fake)
        if not MeterEvent.objects.filter(sent_at__isnull=True).exists():
            break
    assert fake.units == total == 50
    assert not MeterEvent.objects.filter(sent_at__isnull=True).exists()
    assert MeterEvent.objects.filter(attempts__gt=1).exists()  # failures happened


def test_meter_events_are_valid_requests_for_stripe(user, pro_user, stripe_api):
    count_calls(user, 2)
    services.usage_rollup(now=NOW)
    result = services.meter_report()
    assert result == {"prepared": 1, "sent": 1, "failed": 0}
    assert MeterEvent.objects.get().sent_at is not None


def test_without_stripe_keys_the_report_only_prepares(user, pro_user, no_stripe):
    count_calls(user, 2)
    services.usage_rollup(now=NOW)
    assert services.meter_report() == {"prepared": 1, "sent": 0, "failed": 0}


def test_the_beat_tasks_call_the_services(user, pro_user):
    from billing import tasks

    count_calls(user, 2)
    assert tasks.usage_rollup.delay().get() == 1
    assert tasks.meter_report.delay().get()["prepared"] == 1
