"""Injected faults under load, bounded (issue 18; the long version is
``benchmarks/faults_bench.py``, whose load, faults and books these are).

The production shape (``scripts/stack.py``: nginx, granian with two
workers, uvicorn) on the suite's PostgreSQL and Redis, one learning worker
of its own, and an open-loop load of event POSTs and recommendation GETs,
while one after the other: a granian worker is killed (``kill -9``), the
suite's Redis is restarted, its PostgreSQL is restarted (``pg_ctl stop -m
fast``, start), and the learning worker is killed mid-batch and started
again. For each: nothing answered 202 is missing from the interaction log,
the errors stop within a bound, and once the load is over every accepted
event is applied by the coordinator. Restarting the suite's own servers is
safe because the suite runs one test at a time and every client here
reconnects (Django per request, redis-py by retrying, Celery by its broker
retry); this process's connections are closed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, connections

from benchmarks.events_bench import Probe, integrity
from benchmarks.faults_bench import (
    Context,
    Load,
    children,
    republish,
    run_faults,
    warm,
)
from conftest import ROOT, child_process_env
from scripts.servers import postgres_restart, redis_start, redis_stop

RECOVERY_BOUND_S = 20.0  # a respawned granian worker imports Django: ~5 s here
CLAIM_IDLE_MS = 2000  # re-claim what a killed learner held after 2 s, not 30


class SuiteTarget:
    """The faults applied to the suite's servers and a stack of this test."""

    def __init__(self, stack, env: dict[str, str], folder: Path) -> None:
        import redis

        self.stack = stack
        self.port = int(stack.address.rsplit(":", 1)[1])
        self.env = env
        self.folder = folder
        client = redis.Redis.from_url(settings.REDIS_URL)
        self.redis_folder = Path(client.config_get("pidfile")["pidfile"]).parent
        self.redis_port = urlsplit(settings.REDIS_URL).port
        with connection.cursor() as cursor:
            cursor.execute("SHOW data_directory")
            self.pg_folder = Path(cursor.fetchone()[0]).parent
        self.learner: subprocess.Popen | None = None

    def web_workers(self) -> list[int]:
        return children(self.stack.processes["wsgi"].pid)

    def restart_redis(self, down_s: float) -> None:
        redis_stop(self.redis_folder)
        time.sleep(down_s)
        redis_start(self.redis_folder, port=self.redis_port)

    def restart_postgres(self, down_s: float) -> None:
        postgres_restart(self.pg_folder, down_s=down_s)

    def start_learner(self) -> None:
        from apex_site.celery import app

        log = open(self.folder / "learner.log", "a")  # noqa: SIM115
        self.learner = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "apex_site", "worker",
             "-Q", "learning", "-n", "faults-learner@%h", "--concurrency", "1",
             "--without-gossip", "--without-mingle", "-l", "WARNING"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.learner.poll() is None, "the learning worker exited"
            # a connection of its own: the pooled ones may predate a restart
            with (
                contextlib.suppress(Exception),
                app.connection_for_write() as broker,
            ):
                if app.control.ping(
                    destination=[self._node()], timeout=0.5, connection=broker
                ):
                    return
            time.sleep(0.2)
        pytest.fail("the learning worker did not answer a ping within 60 s")

    def kill_learner(self) -> None:
        if self.learner is not None:
            try:
                os.killpg(self.learner.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.learner.wait()

    def _node(self) -> str:
        import socket

        return f"faults-learner@{socket.gethostname()}"


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_faults_under_load_lose_no_accepted_event(tmp_path):
    from accounts.services import api_key_create
    from accounts.tests.factories import UserFactory
    from catalog.tests.factories import MovieFactory
    from scripts.stack import production_shape

    movies = [MovieFactory(rating_count=100 - i).pk for i in range(20)]
    keys = {}
    for _ in range(8):
        user = UserFactory()
        keys[user.pk] = api_key_create(user=user, name="faults")[1]
    env = child_process_env(
        APEX_ARTIFACTS_DIR=str(tmp_path / "no-artifacts"),
        APEX_DATA_DIR=str(tmp_path / "data"),
        APEX_THROTTLE_USER="1000000/min",
        APEX_BILLING_METERING="false",
        APEX_EVENTS_CLAIM_IDLE_MS=str(CLAIM_IDLE_MS),
    )
    probe = Probe(env["DATABASE_URL"], settings.REDIS_URL)
    with production_shape(
        tmp_path / "stack", env, static_root=tmp_path / "static",
        wsgi_workers=2, wsgi_threads=2,
    ) as stack:  # fmt: skip
        target = SuiteTarget(stack, env, tmp_path)
        try:
            target.start_learner()
            asyncio.run(warm(Load(target.port, keys, movies, 10, seed=1), 3))
            load = Load(target.port, keys, movies, rate=20, seed=18, max_requests=2000)
            ctx = Context(target, probe, down_s=1.0, republish=republish)
            result = asyncio.run(
                run_faults(
                    # Redis first: what its restart lost is republished once
                    # 30 s old (OUTBOX_GRACE), by the end of the load
                    load, ctx, ["redis", "web", "postgres", "learner"],
                    steady_s=2, window_s=7, drain_s=30,
                )
            )  # fmt: skip
            books = integrity(probe, dict.fromkeys(load.accepted_ids(), 0.0))
        finally:
            target.kill_learner()
            if probe._db is not None:  # noqa: SLF001 - the bench's own connection
                probe._db.close()  # noqa: SLF001
            # this process's pooled connections predate PostgreSQL's restart
            for alias in connections:
                connections[alias].close()
                connections[alias].close_pool()

    faults = result["faults"]
    assert set(faults) == {"web", "redis", "postgres", "learner"}
    assert result["baseline"]["errors"] == 0, result["baseline"]
    for name, row in faults.items():
        assert row["events_accepted"] > 0, (name, row)
        assert row["data_lost"] == 0, (name, row)
        assert row["recovery_s"] is not None, (name, row)
        assert row["recovery_s"] <= RECOVERY_BOUND_S, (name, row)
        assert "500" not in row["errors_by_status"], (name, row)
    assert faults["web"]["details"]["respawned_after_s"] is not None
    assert faults["learner"]["events_applied"] == faults["learner"]["events_accepted"]
    assert result["data_lost"] == 0
    assert result["retry_of_non_202"]["still_failing"] == 0
    # every accepted event (and every retried one) applied, and only once
    assert result["events_applied"] == result["events_to_apply"], result
    assert books["missing_from_interaction_log"] == 0, books
    assert books["user_profile_over_counted"] == 0, books
    assert books["item_activity_over_counted"] == 0, books
    assert books["dead_letters"] == 0, books


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_an_unreachable_database_answers_503_with_retry_after(error):
    from apex_site.errors import api_exception_handler

    response = api_exception_handler(error("server closed the connection"), {})

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.data["code"] == "unavailable"
