"""Quota exactness on a real server: uvicorn, the test PostgreSQL and Redis,
16 concurrent HTTP clients of one user against a quota of 200."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading

import pytest

from conftest import ROOT, child_process_env
from scripts.servers import free_port, process_stop, wait_for_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def racer_key(user):
    from accounts.services import api_key_create

    _, raw = api_key_create(user=user, name="race")
    return user, raw


@pytest.fixture
def bench_server(tmp_path, racer_key):
    user, _ = racer_key
    env = child_process_env(
        DJANGO_SETTINGS_MODULE="billing.bench_settings",
        APEX_BENCH_RACER=str(user.pk),
        APEX_BENCH_QUOTA="200",
        APEX_DATA_DIR=str(tmp_path),
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "apex_site.asgi:application",
         "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off",
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        wait_for_port(port, "uvicorn", timeout=90)
        yield port
    finally:
        process_stop(proc)


def test_sixteen_clients_get_exactly_the_quota(bench_server, racer_key):
    user, key = racer_key
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", bench_server, timeout=60)
        mine = []
        for _ in range(20):
            conn.request(
                "GET",
                "/v1/events/features",
                headers={"Authorization": f"Api-Key {key}"},
            )
            response = conn.getresponse()
            body = response.read()
            code = json.loads(body)["code"] if response.status == 429 else ""
            mine.append((response.status, code))
        conn.close()
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 320
    assert sum(1 for status, _ in results if status == 200) == 200
    assert all(code == "quota_exceeded" for status, code in results if status != 200)
    from apex_site import throttling
    from billing import services

    assert services.usage_rollup() == 1
    from billing.models import DailyUsage

    assert DailyUsage.objects.get(user=user).calls == 200
    assert throttling.meter().day_counts(DailyUsage.objects.get(user=user).day) == {
        user.pk: 200
    }
