"""Run the whole test suite against throw-away PostgreSQL and Redis servers.

``make test`` calls this. First the static guard rails, from the virtualenv
that runs this script: ``lint-imports`` (the import contracts in
pyproject.toml), ``mypy`` (strict, on the engine) and the secret scan
(``scripts/secret_scan.py``); if any fails the run
stops there, before any server starts. Then, unless DATABASE_URL / REDIS_URL
/ APEX_TEST_STRIPE_API_HOST are given, it starts a private PostgreSQL
cluster, a Redis server and stripe-mock on free loopback ports
(``scripts/servers.py``), runs ``makemigrations --check`` and pytest (every
marker), then stops what it started. Each step logs its wall
time. Extra arguments go to pytest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as `python scripts/run_tests.py`
from scripts.servers import (  # noqa: E402
    ServiceError,
    postgres_server,
    redis_server,
    stripe_mock_server,
)

PYTHON = sys.executable
VENV_BIN = Path(PYTHON).parent  # make runs `.venv/bin/python scripts/run_tests.py`
logger = logging.getLogger("run_tests")

STATIC_CHECKS: tuple[tuple[str, str], ...] = (
    ("import contracts (lint-imports)", "lint-imports"),
    ("engine types (mypy, strict)", "mypy"),
    ("no secret in the repository (detect-secrets)", "python scripts/secret_scan.py"),
)
"""(what, the virtualenv's command and its arguments); their settings are in
pyproject.toml (the secret scan's: ``.secrets.baseline``)."""


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    """Log ``what`` and, when it is done (or failed), its wall time."""
    logger.info("%s", what)
    started = time.monotonic()
    try:
        yield
    finally:
        logger.info("%s: %.1fs", what, time.monotonic() - started)


def run(command: list[str], env: Mapping[str, str] | None = None) -> int:
    return subprocess.call(command, cwd=ROOT, env=env)


def static_checks() -> list[str]:
    """Run every static check (all of them, even after a failure); returns
    what failed."""
    failed = []
    for what, command in STATIC_CHECKS:
        tool, *arguments = command.split()
        executable = VENV_BIN / tool
        with step(what):
            if not executable.exists():
                logger.error("%s is not installed (make venv)", executable)
                code = 127
            else:
                code = run([str(executable), *arguments])
        if code != 0:
            failed.append(what)
    return failed


def main(pytest_args: list[str]) -> int:
    # APEX_SKIP_STATIC_CHECKS=1: a developer's quick re-run of some tests while
    # the tree is mid-change; `make test` and CI never set it
    skip = os.environ.get("APEX_SKIP_STATIC_CHECKS") == "1"
    failed = [] if skip else static_checks()
    if failed:
        logger.error(
            "FAILED before the test suite: %s. Fix these (the output above says "
            "where); the tests did not run.",
            ", ".join(failed),
        )
        return 1
    env = dict(os.environ)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env["DJANGO_SETTINGS_MODULE"] = "apex_site.settings.test"
    with contextlib.ExitStack() as stack:
        with step("starting the throw-away services"):
            if not env.get("DATABASE_URL"):
                env["DATABASE_URL"] = stack.enter_context(postgres_server())
            if not env.get("REDIS_URL"):
                env["REDIS_URL"] = stack.enter_context(redis_server())
            # Stripe's API without the network. Under its own name: the billing
            # tests point dj-stripe and stripe-python at it (STRIPE_API_HOST)
            # with a test key; settings built in a subprocess never see it.
            if not env.get("APEX_TEST_STRIPE_API_HOST"):
                env["APEX_TEST_STRIPE_API_HOST"] = stack.enter_context(
                    stripe_mock_server()
                )
            env.setdefault(
                "APEX_DATA_DIR",
                stack.enter_context(tempfile.TemporaryDirectory(prefix="apex-data-")),
            )

        with step("checking that every model change has a migration"):
            code = run(
                [PYTHON, "manage.py", "makemigrations", "--check", "--dry-run"], env
            )
        if code != 0:
            logger.error("FAILED: a model change has no migration (makemigrations)")
            return code
        with step("running the test suite (all markers)"):
            code = run([PYTHON, "-m", "pytest", *pytest_args], env)
        logger.info("pytest exit code %d", code)
        return code


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="==> %(message)s", stream=sys.stdout)
    try:
        sys.exit(main(sys.argv[1:]))
    except ServiceError as error:
        sys.exit(str(error))
