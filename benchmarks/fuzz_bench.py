"""The long schema fuzzing run (schemathesis, issue 18) against a real server.

Starts its own private PostgreSQL, Redis and stripe-mock on loopback ports
(``scripts/servers.py``), migrates, seeds a small world (a catalog over
three genres, a subscriber with a rating history, a staff member, the paid
plans synced to stripe-mock), then serves the app in the production shape
(``scripts/stack.py``: granian's WSGI workers behind nginx, with the base
settings, no artifacts: recommendations come from the database fallback) and
fuzzes every operation of the schema it serves (``/v1/schema``) as three
callers — anonymous, the subscriber and staff (JWTs) — with
``apex_site.tests.fuzzing`` (the runner of the bounded test in ``make
test``): ``--max-examples`` cases per operation and generation mode
(positive: schema-valid; negative: schema-invalid), seeded with ``--seed``.
Metering is off (``APEX_METERED_PATHS=,``): the fuzzer calls faster than a
plan's per-second rate, and 429s would hide the operations; the throttles
(the API's and the login/token/sign-up ones) are raised for the same reason.

Prints, per caller: operations, requests sent, 5xx found, documented
unavailability answers (502/503), failed checks by name; ``--out`` writes
the same as JSON. Exit status 1 when any caller found a 5xx or a failure.

Usage::

    flock /tmp/apex-bench.lock timeout 480 .venv/bin/python \\
        benchmarks/fuzz_bench.py --max-examples 40 --seed 18
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.servers import (  # noqa: E402
    postgres_server,
    redis_server,
    stripe_mock_server,
)

STRIPE_TEST_KEY = "sk_test_apexfuzzbench00000000000"


def server_env(data: Path, *, database: str, redis: str, stripe_host: str) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "apex_site.settings.base",
        "DATABASE_URL": database,
        "REDIS_URL": redis,
        "APEX_DATA_DIR": str(data),
        "APEX_ARTIFACTS_DIR": str(data / "no-artifacts"),
        "DJANGO_SECRET_KEY": "fuzz-bench-" + "x" * 50,
        "STRIPE_SECRET_KEY": STRIPE_TEST_KEY,
        "STRIPE_API_HOST": stripe_host,
        "APEX_METERED_PATHS": ",",
        "APEX_THROTTLE_ANON": "100000/min",
        "APEX_THROTTLE_USER": "100000/min",
        "APEX_THROTTLE_AUTH": "100000/min",
        "APEX_THROTTLE_SIGNUP": "100000/min",
    }


def seed_world(stripe_host: str) -> dict[str, dict[str, str]]:
    """Migrate, seed, sync the plans; returns the callers' headers."""
    import django

    django.setup()
    import stripe
    from django.core.management import call_command
    from djstripe.models import Account, APIKey
    from rest_framework_simplejwt.tokens import RefreshToken

    from accounts.tests.factories import UserFactory
    from billing import services
    from recommendations.tests.feed_fixtures import give_history, make_catalog

    call_command("migrate", "--noinput", verbosity=0)
    movies = make_catalog(40)
    subscriber = UserFactory()
    give_history(subscriber, movies[:6])
    staff = UserFactory(is_staff=True)
    # dj-stripe resolves the key's account through GET /v1/account, which
    # stripe-mock answers with a new id each time: store it up front (as
    # billing/tests/conftest.py does).
    stripe.api_base = stripe_host
    account = Account.objects.create(id="acct_apexfuzz", livemode=False)
    APIKey.objects.create(
        secret=STRIPE_TEST_KEY, type="secret", livemode=False,
        djstripe_owner_account=account,
    )  # fmt: skip
    services.plans_sync()

    def bearer(user) -> dict[str, str]:
        return {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"}

    return {"anonymous": {}, "subscriber": bearer(subscriber), "staff": bearer(staff)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=40)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument(
        "--callers", default="anonymous,subscriber,staff", help="comma-separated"
    )
    parser.add_argument("--positive-only", action="store_true")
    parser.add_argument("--wsgi-workers", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fuzz-")))
        database = stack.enter_context(postgres_server())
        redis = stack.enter_context(redis_server())
        stripe_host = stack.enter_context(stripe_mock_server())
        env = server_env(
            folder / "data", database=database, redis=redis, stripe_host=stripe_host
        )
        os.environ.update(env)
        started = time.monotonic()
        headers = seed_world(stripe_host)
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
        print(f"seeded in {time.monotonic() - started:.0f}s", flush=True)

        import schemathesis
        from schemathesis import GenerationMode

        from apex_site.tests.fuzzing import Caller, fuzz, prepare
        from scripts.stack import production_shape

        server = stack.enter_context(
            production_shape(
                folder / "stack", env, static_root=folder / "data" / "staticfiles",
                wsgi_workers=args.wsgi_workers,
            )
        )  # fmt: skip
        base_url = f"http://{server.address}"
        schema = prepare(schemathesis.openapi.from_url(f"{base_url}/v1/schema"))
        modes = [GenerationMode.POSITIVE]
        if not args.positive_only:
            modes.append(GenerationMode.NEGATIVE)
        results = []
        for name in args.callers.split(","):
            started = time.monotonic()
            report = fuzz(
                schema, Caller(name, headers[name]),
                max_examples=args.max_examples, seed_value=args.seed, modes=modes,
                call_kwargs={"base_url": base_url, "timeout": 30},
            )  # fmt: skip
            seconds = time.monotonic() - started
            results.append(
                {
                    "caller": name,
                    "operations": report.operations,
                    "requests": report.requests,
                    "server_errors": report.server_errors,
                    "unavailable": report.unavailable,
                    "other_failures": report.other_failures,
                    "failures_by_check": dict(report.failures),
                    "statuses": {str(k): v for k, v in sorted(report.statuses.items())},
                    "seconds": round(seconds, 1),
                }
            )
            print(
                f"{name}: {report.operations} operations, {report.requests} "
                f"requests, {report.server_errors} 5xx, {report.unavailable} "
                f"documented 502/503, failures {dict(report.failures) or 'none'} "
                f"({seconds:.0f}s)",
                flush=True,
            )
            if report.found:
                print(report.describe(400), flush=True)

    print()
    print("| caller | operations | requests | 5xx | other failures |")
    print("|---|---:|---:|---:|---:|")
    for row in results:
        print(
            f"| {row['caller']} | {row['operations']} | {row['requests']} | "
            f"{row['server_errors']} | {row['other_failures']} |"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 1 if any(r["server_errors"] or r["other_failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
