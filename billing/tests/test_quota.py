"""The monthly quota and the rate on metered endpoints: headers, 429s, one
Redis round trip, no database write per call, exactness under concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apex_site import throttling
from billing import selectors, services
from billing.plans import FREE

pytestmark = pytest.mark.django_db

METERED = "/v1/events/features"  # cheap, metered (under /v1/events)


@pytest.fixture
def caller(api_client, user):
    api_client.force_authenticate(user)
    return api_client


def small_plan(settings, user, *, quota=3, rate=1000):
    """A Free plan with a tiny quota, for this user only."""
    limits = throttling.Limits(
        subject=f"u{user.pk}",
        user_id=user.pk,
        rate_per_second=rate,
        monthly_quota=quota,
        hard_limit=quota,
    )
    selectors.limits_remember(user_id=user.pk, limits=limits)
    return limits


def test_metered_answers_carry_the_quota_headers(caller, user):
    response = caller.get(METERED)
    assert response.status_code == 200
    assert response["X-RateLimit-Limit"] == str(FREE.monthly_quota)
    assert response["X-RateLimit-Remaining"] == str(FREE.monthly_quota - 1)
    reset = datetime.fromtimestamp(int(response["X-RateLimit-Reset"]), UTC)
    assert reset == throttling.month_reset(datetime.now(UTC))


def test_calls_that_are_not_metered_have_no_quota_headers(caller):
    response = caller.get("/v1/auth/me")
    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response


def test_over_the_quota_is_429_in_the_error_shape_with_retry_after(
    caller, user, settings
):
    small_plan(settings, user, quota=3)
    codes = [caller.get(METERED).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = caller.get(METERED)
    body = response.json()
    assert body["code"] == "quota_exceeded"
    assert "monthly quota of 3 metered calls" in body["message"]
    assert set(body) == {"code", "message", "detail"}
    seconds = int(response["Retry-After"])
    now = datetime.now(UTC)
    assert abs(seconds - (throttling.month_reset(now) - now).total_seconds()) < 5
    assert response["X-RateLimit-Remaining"] == "0"
    # refused calls are not counted
    assert throttling.meter().month_usage(f"u{user.pk}", now) == 3


def test_over_the_rate_is_429_throttled_for_one_second(
    caller, user, settings, monkeypatch
):
    class Frozen(datetime):
        moment = datetime(2026, 12, 4, 12, 0, 0, 250_000, tzinfo=UTC)

        @classmethod
        def now(cls, tz=None):
            return cls.moment

    monkeypatch.setattr(throttling, "datetime", Frozen)
    small_plan(settings, user, quota=100, rate=2)
    codes = [caller.get(METERED).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    response = caller.get(METERED)
    assert response.json()["code"] == "throttled"
    assert response["Retry-After"] == "1"
    Frozen.moment += timedelta(seconds=1)  # the next second's window
    assert caller.get(METERED).status_code == 200


def test_anonymous_calls_keep_the_default_rate_and_no_quota(api_client):
    response = api_client.get("/v1/search", {"q": "x"})
    assert response.status_code in (200, 503)
    assert "X-RateLimit-Limit" not in response


def test_a_metered_call_writes_nothing_to_the_database(caller, user):
    caller.get(METERED)  # warm
    with CaptureQueriesContext(connection) as queries:
        assert caller.get(METERED).status_code == 200
    writes = [
        q["sql"]
        for q in queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]
    assert writes == []


def test_a_new_users_first_metered_call_costs_no_query_for_the_plan(api_client):
    from accounts.tests.factories import UserFactory

    member = UserFactory()
    api_client.force_authenticate(member)
    with CaptureQueriesContext(connection) as queries:
        api_client.get(METERED)
    assert not any("billing_" in q["sql"] for q in queries)


def test_the_plan_decides_the_quota(caller, user):
    services.plan_override(user_id=user.pk, plan_key="pro", actor_id=None, reason="t")
    selectors.limits_forget(user_id=user.pk)  # the override's on-commit does it
    assert caller.get(METERED)["X-RateLimit-Limit"] == "100000"


@pytest.mark.parametrize("bumped", [True, False])
def test_a_plan_change_elsewhere_reaches_this_process_at_its_next_metered_call(
    caller, user, bumped
):
    """Another process changes the plan (the row, then the bump after its
    commit): this process's kept limits give way at its next metered call -
    the one that sees the new generation - and stay kept without the bump."""
    from billing.models import BillingAccount

    for _ in range(2):  # the first call learns the generation, the second keeps
        assert caller.get(METERED)["X-RateLimit-Limit"] == str(FREE.monthly_quota)
    BillingAccount.objects.update_or_create(
        user_id=user.pk, defaults={"override_plan": "pro"}
    )
    if bumped:
        throttling.limits_changed()
    assert caller.get(METERED)["X-RateLimit-Limit"] == str(FREE.monthly_quota)
    expected = "100000" if bumped else str(FREE.monthly_quota)
    assert caller.get(METERED)["X-RateLimit-Limit"] == expected


def test_the_in_process_meter_carries_the_generation_too():
    meter = throttling.MemoryMeter()
    limits = throttling.Limits(
        subject="u1", user_id=1, rate_per_second=1, monthly_quota=1, hard_limit=1
    )
    now = datetime.now(UTC)
    assert meter.hit(limits, now).generation == 0
    meter.limits_changed()
    # a counted call and a refused one
    assert [meter.hit(limits, now).generation for _ in range(2)] == [1, 1]


def test_the_quota_is_exact_under_concurrency():
    """16 threads race for a quota of 1,000 on the real Redis: the Lua script
    checks and counts atomically, so exactly 1,000 calls are let through."""
    limits = throttling.Limits(
        subject="u999999", user_id=None, rate_per_second=10**6,
        monthly_quota=1000, hard_limit=1000,
    )  # fmt: skip
    meter = throttling.meter()
    counted = []
    lock = threading.Lock()

    def client() -> None:
        ok = 0
        for _ in range(100):
            if meter.hit(limits, datetime.now(UTC)).outcome == 0:
                ok += 1
        with lock:
            counted.append(ok)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counted) == 1000
    assert meter.month_usage("u999999", datetime.now(UTC)) == 1000


def test_the_embedded_meter_keeps_the_same_rules():
    meter = throttling.MemoryMeter()
    limits = throttling.Limits(
        subject="u1", user_id=1, rate_per_second=2, monthly_quota=3, hard_limit=3
    )
    now = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
    outcomes = [meter.hit(limits, now).outcome for _ in range(3)]
    assert outcomes == [0, 0, 1]  # the rate
    later = datetime(2026, 12, 4, 12, 0, 1, tzinfo=UTC)
    assert [meter.hit(limits, later).outcome for _ in range(2)] == [0, 2]  # quota
    assert meter.day_counts(now.date()) == {1: 3}


def test_a_redis_outage_lets_calls_through(caller, monkeypatch):
    class Broken:
        def hit(self, *args):
            raise ConnectionError("redis is down")

    monkeypatch.setattr(throttling, "meter", lambda: Broken())
    response = caller.get(METERED)
    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response
