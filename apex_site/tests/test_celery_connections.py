"""A prefork Celery worker keeps its pooled PostgreSQL connections between
tasks (Celery's Django fix-up closed the whole pool around every task) and
replaces one that died idle, PostgreSQL restarted between two tasks
(``apex_site/celery.py``)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection, connections

from conftest import ROOT, child_process_env
from scripts.servers import postgres_restart, process_stop

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PROBE = "tests.database_backend_pid"


@pytest.fixture(params=["prefork", "solo"])
def worker_queue(request, real_celery):
    """A worker (prefork: one child) on a queue of its own, with the probe task."""
    from apex_site.celery import app

    queue = f"probe-{uuid.uuid4().hex[:8]}"
    node = f"{queue}@localhost"
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "apex_site", "worker", "-Q", queue,
         "-n", node, "--pool", request.param, "--concurrency", "1",
         "--include", "apex_site.tests.celery_probe",
         "--without-gossip", "--without-mingle", "-l", "WARNING"],
        cwd=ROOT, env=child_process_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not app.control.ping(destination=[node], timeout=0.5):
            assert proc.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker did not answer in 90 s"
        yield queue
    finally:
        process_stop(proc)


def _backend_pid(queue: str) -> int:
    from apex_site.celery import app

    return app.send_task(PROBE, queue=queue).get(timeout=30)


def test_a_worker_queue_reuses_its_connection_and_survives_a_postgres_restart(
    worker_queue,
):
    # the pool hands its few connections round: backends serve several tasks
    pids = [_backend_pid(worker_queue) for _ in range(8)]
    assert len(set(pids)) <= 3, f"new PostgreSQL backends per task: {pids}"

    with connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        pg_folder = Path(cursor.fetchone()[0]).parent
    try:
        postgres_restart(pg_folder)
        # the pooled connection died idle: checked before use and replaced,
        # the task does not fail
        after = [_backend_pid(worker_queue) for _ in range(4)]
        assert not set(after) & set(pids)
    finally:
        # this process's pooled connections predate the restart
        for alias in connections:
            connections[alias].close()
            connections[alias].close_pool()
