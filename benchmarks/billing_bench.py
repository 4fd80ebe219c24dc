"""The billing numbers in docs/BENCHMARKS.md: ``python benchmarks/billing_bench.py``.

Everything real and local: a throw-away PostgreSQL and Redis
(``scripts/servers.py``), uvicorn serving the product, HTTP clients in
threads. Three measurements:

1. quota exactness: 16 concurrent clients of one user against a quota of
   1,000 metered calls — how many were answered 200 (must be exactly 1,000)
   and how many 429 ``quota_exceeded``;
2. metering cost: p50 / p90 latency of a metered call on a server with the
   meter on and one with it off (``APEX_BILLING_METERING=0``: DRF's rate
   throttle only, two cache calls), requests interleaved in one run; and the
   meter's own Lua call, timed alone;
3. meter reporting: 1,000 metered calls of a Pro user in 20 rounds, each
   round rolled up and reported through a Stripe stand-in that fails 30 % of
   calls before and 20 % after storing the event — the units it received
   (must be exactly the calls answered).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.servers import (  # noqa: E402
    free_port,
    postgres_server,
    process_stop,
    redis_server,
    wait_for_port,
)

METERED_PATH = "/v1/events/features"


def serve(env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "apex_site.asgi:application",
         "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off",
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    wait_for_port(port, "uvicorn", timeout=120)
    return proc, port


def get(conn: http.client.HTTPConnection, key: str) -> tuple[int, dict, float]:
    started = time.perf_counter()
    conn.request("GET", METERED_PATH, headers={"Authorization": f"Api-Key {key}"})
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    data = json.loads(body) if response.status == 429 else {}
    return response.status, data, elapsed


def quota_exactness(port: int, key: str, clients: int = 16, each: int = 100) -> dict:
    counts = {"ok": 0, "quota": 0, "other": 0}
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = {"ok": 0, "quota": 0, "other": 0}
        for _ in range(each):
            status, data, _ = get(conn, key)
            if status == 200:
                mine["ok"] += 1
            elif status == 429 and data.get("code") == "quota_exceeded":
                mine["quota"] += 1
            else:
                mine["other"] += 1
        conn.close()
        with lock:
            for k, v in mine.items():
                counts[k] += v

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts["seconds"] = round(time.perf_counter() - started, 1)
    return counts


def latency(port_on: int, port_off: int, key: str, n: int) -> dict:
    conns = {
        "on": http.client.HTTPConnection("127.0.0.1", port_on, timeout=30),
        "off": http.client.HTTPConnection("127.0.0.1", port_off, timeout=30),
    }
    times: dict[str, list[float]] = {"on": [], "off": []}
    for name in conns:  # warm both
        for _ in range(50):
            get(conns[name], key)
    for i in range(n):
        order = ("on", "off") if i % 2 else ("off", "on")
        for name in order:
            status, _, elapsed = get(conns[name], key)
            assert status == 200, (name, status)
            times[name].append(elapsed * 1000)
    result = {}
    for name, values in times.items():
        values.sort()
        result[name] = {
            "p50_ms": round(statistics.median(values), 3),
            "p90_ms": round(values[int(0.9 * len(values))], 3),
        }
    result["added_p50_ms"] = round(result["on"]["p50_ms"] - result["off"]["p50_ms"], 3)
    return result


def meter_hit_cost(n: int = 5000) -> dict:
    """The meter alone, in this process: one Lua call to the same Redis."""
    from datetime import UTC, datetime

    from apex_site import throttling

    limits = throttling.Limits(
        subject="u0", user_id=None, rate_per_second=10**9,
        monthly_quota=10**9, hard_limit=10**9,
    )  # fmt: skip
    meter = throttling.meter()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        meter.hit(limits, datetime.now(UTC))
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p99_ms": round(times[int(0.99 * n)], 3),
    }


def meter_reporting(port: int, key: str, rounds: int = 20, each: int = 50) -> dict:
    """``rounds`` x ``each`` metered calls of a Pro user through the server,
    each round followed by the beat's two jobs against a failing Stripe, then
    the beat runs until nothing is pending."""
    from billing import services
    from billing.models import MeterEvent
    from billing.tests.test_usage_reporting import FakeStripe

    fake = FakeStripe(fail_before=0.3, fail_after=0.2, seed=14)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    calls = runs = 0
    for _ in range(rounds):
        for _ in range(each):
            status, _, _ = get(conn, key)
            calls += status == 200
        services.usage_rollup()
        services.meter_report(client=fake)
        runs += 1
    while MeterEvent.objects.filter(sent_at__isnull=True).exists():
        services.meter_report(client=fake)
        runs += 1
    return {
        "calls_answered": calls,
        "units_received": fake.units,
        "meter_events": MeterEvent.objects.count(),
        "send_attempts": fake.calls,
        "beat_runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="apex-billing-bench-")
    with postgres_server() as database, redis_server() as redis:
        env = {
            **os.environ,
            "DATABASE_URL": database,
            "REDIS_URL": redis,
            "DJANGO_SETTINGS_MODULE": "billing.bench_settings",
            "DJANGO_SECRET_KEY": "billing-bench",
            "APEX_DATA_DIR": data_dir,
            "APEX_THROTTLE_USER": "1000000000/min",
            "APEX_CELERY_EAGER": "1",
            "APEX_LOG_LEVEL": "ERROR",
            "APEX_BENCH_QUOTA": "1000",
        }
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from accounts.services import api_key_create
        from accounts.tests.factories import UserFactory
        from billing.models import BillingAccount

        racer, timer, reporter = UserFactory(), UserFactory(), UserFactory()
        # a Pro customer: their calls are reported to Stripe
        BillingAccount.objects.create(
            user=reporter, plan="pro", status="active", stripe_customer_id="cus_bench"
        )
        _, racer_key = api_key_create(user=racer, name="bench")
        _, timer_key = api_key_create(user=timer, name="bench")
        _, reporter_key = api_key_create(user=reporter, name="bench")

        env["APEX_BENCH_RACER"] = str(racer.pk)
        on, port_on = serve(env)
        off, port_off = serve(
            {
                **env,
                "APEX_BILLING_METERING": "0",
                "DJANGO_SETTINGS_MODULE": ("apex_site.settings.base"),
            }
        )
        try:
            exact = quota_exactness(port_on, racer_key)
            print("quota exactness (16 clients x 100 calls, quota 1,000):", exact)
            cost = latency(port_on, port_off, timer_key, args.requests)
            print(f"metering cost ({args.requests} interleaved calls each):", cost)
            print("the meter alone (5,000 Lua calls):", meter_hit_cost())
            report = meter_reporting(port_on, reporter_key)
            print("meter reporting (30 % fail before, 20 % after):", report)
        finally:
            process_stop(on)
            process_stop(off)


if __name__ == "__main__":
    main()
