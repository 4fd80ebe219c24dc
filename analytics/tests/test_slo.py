"""SLO windows on recorded fake latencies, the middleware, ``/metrics`` and
``/v1/platform/slo`` access rules, and a Redis that is down."""

from __future__ import annotations

import time
import uuid

import pytest
from django.test import Client

from accounts.tests.factories import UserFactory
from analytics import slo
from conftest import require_redis

NOW = 1_800_000_000.0  # a fixed clock; minute boundaries below are relative to it
MINUTE = 60


@pytest.fixture
def recorder():
    store = slo.MinuteStore(
        redis_url=require_redis(), prefix=f"test:slo:{uuid.uuid4()}"
    )
    rec = slo.Recorder(store, flush_seconds=3600)
    rec._pid = __import__("os").getpid()  # no flusher thread: the test flushes
    yield rec
    store.clear()


def fill(rec, route, ms, count, *, minutes_ago, status=200, base=NOW):
    for _ in range(count):
        rec.record(route, ms, status, at=base - minutes_ago * MINUTE)


def test_quantiles_interpolate_inside_their_bucket():
    counts = [0] * (len(slo.BOUNDS_MS) + 1)
    counts[slo.BOUNDS_MS.index(10)] = 100  # everything in (5, 10] ms
    assert slo.quantile(0.5, counts) == pytest.approx(7.5)
    assert slo.quantile(0.95, counts) == pytest.approx(9.75)
    assert slo.quantile(0.5, [0] * len(counts)) is None
    counts[-1] = 1000  # +Inf: the highest finite bound
    assert slo.quantile(0.99, counts) == slo.BOUNDS_MS[-1]


def test_windows_see_only_their_minutes(recorder, settings):
    settings.APEX_SLO_AVAILABILITY = 0.99
    settings.APEX_SLO_P95_MS = 50.0
    route = "GET v1/things"
    fill(recorder, route, 8, 100, minutes_ago=1)  # (5, 10]
    fill(recorder, route, 400, 100, minutes_ago=30)  # (250, 500]
    fill(recorder, route, 3000, 100, minutes_ago=600, status=503)  # (2500, 5000]
    fill(recorder, route, 8, 100, minutes_ago=2000)  # beyond 24 h: ignored
    report = slo.report(now=NOW, recorder=recorder)
    (row,) = report["routes"]
    w5, w1h, w24 = (row["windows"][w] for w in ("5m", "1h", "24h"))
    assert (w5["requests"], w1h["requests"], w24["requests"]) == (100, 200, 300)
    assert w5["p50_ms"] == pytest.approx(7.5)
    assert w5["latency_met"] and w5["errors"] == 0 and w5["error_budget_left"] == 1
    # 1 h: half in (5, 10], half in (250, 500]; p95 = 250 + 250 * 0.9
    assert w1h["p50_ms"] == pytest.approx(10.0)
    assert w1h["p95_ms"] == pytest.approx(475.0)
    assert not w1h["latency_met"]
    # 24 h: 100 of 300 failed; the budget (1 % = 3 errors) is overspent
    assert w24["errors"] == 100
    assert w24["error_rate"] == pytest.approx(1 / 3)
    assert w24["error_budget_left"] == pytest.approx(1 - 100 / 3)
    assert w24["p99_ms"] == pytest.approx(2500 + 2500 * 0.97)
    assert row["targets"] == {"availability": 0.99, "p95_ms": 50.0}


def test_a_route_target_overrides_the_default(recorder, settings):
    settings.APEX_SLO_ROUTE_P95_MS = {"GET v1/slow": 5000.0}
    fill(recorder, "GET v1/slow", 400, 10, minutes_ago=0)
    (row,) = slo.report(now=NOW, recorder=recorder)["routes"]
    assert row["targets"]["p95_ms"] == 5000.0 and row["windows"]["5m"]["latency_met"]


def test_counts_survive_a_redis_that_is_down():
    store = slo.MinuteStore(redis_url="redis://127.0.0.1:1/0", prefix="test:down")
    rec = slo.Recorder(store, flush_seconds=3600)
    rec._pid = __import__("os").getpid()
    rec.record("GET x", 3.0, 200, at=NOW)
    assert rec.flush() is False  # one WARNING, nothing raised
    assert sum(rec._pending.values()) == 1  # kept for the next flush
    rec.record("GET x", 3.0, 500, at=NOW)
    assert rec.flush() is False
    assert sum(rec._pending.values()) == 3  # two requests + one error


@pytest.mark.django_db
def test_the_middleware_records_the_route_pattern_and_redis_down_breaks_nothing(
    recorder,
):
    slo.set_recorder(recorder)
    try:
        client = Client()
        assert client.get("/v1/platform/readiness").status_code in (200, 503)
        client.get("/v1/no-such-thing")
        report = slo.report(recorder=recorder)
        routes = {r["route"]: r for r in report["routes"]}
        assert routes["GET v1/platform/readiness"]["windows"]["5m"]["requests"] == 1
        assert "GET (unmatched)" in routes
        # Redis gone: requests still answer
        down = slo.Recorder(
            slo.MinuteStore(redis_url="redis://127.0.0.1:1/0"), flush_seconds=0.05
        )
        slo.set_recorder(down)
        assert client.get("/v1/platform/readiness").status_code in (200, 503)
        assert down.flush() is False
    finally:
        slo.set_recorder(None)


@pytest.mark.django_db
def test_metrics_is_for_loopback_or_staff():
    remote = Client(REMOTE_ADDR="203.0.113.9")
    assert remote.get("/metrics").status_code == 403
    local = Client(REMOTE_ADDR="127.0.0.1")
    response = local.get("/metrics")
    assert response.status_code == 200
    assert b"apex_http_request_duration_seconds" in response.content
    # a proxy relaying an outside caller from the loopback is not local
    assert local.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    remote.force_login(UserFactory())
    assert remote.get("/metrics").status_code == 403
    remote.force_login(UserFactory(is_staff=True))
    assert remote.get("/metrics").status_code == 200


@pytest.mark.django_db
def test_the_slo_api_is_staff_only(api_client, recorder):
    slo.set_recorder(recorder)
    try:
        fill(recorder, "GET v1/things", 8, 5, minutes_ago=0, base=time.time())
        assert api_client.get("/v1/platform/slo").status_code == 401
        api_client.force_authenticate(UserFactory())
        assert api_client.get("/v1/platform/slo").status_code == 403
        api_client.force_authenticate(UserFactory(is_staff=True))
        response = api_client.get("/v1/platform/slo")
        assert response.status_code == 200
        body = response.json()
        assert body["windows"] == {"5m": 300, "1h": 3600, "24h": 86400}
        things = next(r for r in body["routes"] if r["route"] == "GET v1/things")
        assert things["windows"]["5m"]["requests"] == 5
    finally:
        slo.set_recorder(None)
