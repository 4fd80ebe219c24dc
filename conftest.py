"""Fixtures shared by every app's tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from scripts.servers import process_stop

ROOT = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _fresh_result_cache():
    """Each test starts with an empty serving result cache (per process)."""
    from recommendations.serving.result_cache import set_result_cache

    set_result_cache(None)
    yield
    set_result_cache(None)


@pytest.fixture(autouse=True)
def _fresh_catalog_memory():
    """Each test starts with a process that remembers no catalog (its
    movies come and go with the test's transaction)."""
    from catalog.selectors import catalog_memory_forget

    catalog_memory_forget()
    yield
    catalog_memory_forget()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user(db):
    from accounts.tests.factories import UserFactory

    return UserFactory()


def require_redis() -> str:
    """Integration tests need the Redis that `make test` starts; never skip."""
    if not settings.REDIS_URL:
        pytest.fail("REDIS_URL is not set: run the suite with `make test`")
    return settings.REDIS_URL


@pytest.fixture
def browser_page(live_server):
    """A Chromium page (Playwright) for tests against ``live_server``."""
    from django.db import connections

    from apex_site.browser import chromium_page

    # Playwright's sync API runs an event loop in the test thread, which makes
    # Django refuse ORM calls there; the calls are still made one at a time.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with chromium_page() as page:
            yield page
            # ORM calls made while Playwright's loop runs get their own
            # connection (asgiref context); close it, or it blocks the teardown
            # of the test database.
            connections.close_all()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def child_process_env(**extra: str) -> dict[str, str]:
    """The environment of a server process the tests start (a Celery worker,
    uvicorn): the test database and Redis, tasks sent to the real worker."""
    require_redis()
    db = settings.DATABASES["default"]
    return {
        **os.environ,
        "APEX_CELERY_EAGER": "0",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,  # sessions made by the tests
        "DATABASE_URL": (
            f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}"
            f"/{db['NAME']}"
        ),
        **extra,
    }


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """A real Celery worker process on the test Redis and the test database."""
    from apex_site.celery import app

    env = child_process_env()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "apex_site",
            "worker",
            "-Q",
            "default,learning",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "-n",
            "pytest@%h",
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"celery worker exited with {proc.returncode}")
            if app.control.inspect(timeout=1).ping():
                break
        else:
            pytest.fail("celery worker did not answer a ping within 90 s")
        yield proc
    finally:
        process_stop(proc)


@pytest.fixture
def real_celery(celery_worker_process, settings):
    """Send tasks to the worker process instead of running them in-process."""
    from apex_site.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    try:
        yield app
    finally:
        app.conf.task_always_eager = True


@pytest.fixture
def production_server(tmp_path, real_celery):
    """The production shape (``scripts/stack.py``): nginx in front, HTTP on
    granian's WSGI workers, websockets on uvicorn, ``/static/`` from the
    collected files; on the test database and Redis, tasks going to the
    worker (no in-process fallback), no artifacts (the feed is served by the
    database fallback, which a worker computes as well as an engine). Yields
    nginx's ``127.0.0.1:<port>``."""
    from scripts.stack import production_shape

    data = tmp_path / "data"
    env = child_process_env(
        APEX_ARTIFACTS_DIR=str(tmp_path / "no-artifacts"), APEX_DATA_DIR=str(data)
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT, env=env, check=True,
    )  # fmt: skip
    with production_shape(
        tmp_path / "stack", env, static_root=data / "staticfiles", wsgi_workers=1
    ) as stack:
        yield stack.address


@pytest.fixture(autouse=True)
def _fresh_meter():
    """Each test starts with empty usage counters (the billing meter) and no
    cached plan limits: the suite's callers would otherwise share a quota."""
    from apex_site.throttling import meter
    from billing.selectors import limits_forget

    limits_forget()
    try:
        meter().reset()
    except Exception:  # a test that stopped Redis on purpose
        pass
    yield
    limits_forget()


@pytest.fixture(scope="session")
def stripe_mock_url() -> Iterator[str]:
    """stripe-mock's URL: the one `make test` started
    (APEX_TEST_STRIPE_API_HOST), else one started here (installed with
    `go install` when missing)."""
    if os.environ.get("APEX_TEST_STRIPE_API_HOST"):
        yield os.environ["APEX_TEST_STRIPE_API_HOST"]
        return
    from scripts.servers import stripe_mock_server

    with stripe_mock_server() as url:
        yield url
