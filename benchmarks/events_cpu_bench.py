"""CPU per event in one process: ``POST /v1/events`` and the coordinator.

The events bench (``events_bench.py``) measures the whole stack, where every
process competes for the same cores; this one measures what one request and
one applied event cost in CPU, without the noise of the others, so a change
to either path can be compared in seconds. On 127.0.0.1 only, in a temporary
folder: PostgreSQL and Redis (``scripts/servers.py``), ``migrate``, 50 users
with an API key each on the Business plan (the billing meter on, as in
production), 2,000 movies. Then:

1. ``POST /v1/events`` (one event: a click or a rating) called through the
   WSGI application itself, as granian calls it (production settings, every
   middleware): ``--requests`` calls per round, ``--rounds`` rounds; CPU
   (``time.process_time``) and wall time per request. The web process's
   CPU only: PostgreSQL's and Redis's are not in it.
2. The coordinator (``learning.coordinator.events_drain``) applying the
   events of phase 1 from the stream in batches of each ``--batch-sizes``:
   CPU and wall time per event and per batch.

``--profile PATH``: a py-spy binary; each phase is sampled (holding the GIL)
and the functions with the most samples are printed.

    .venv/bin/python benchmarks/events_cpu_bench.py [--requests 1500]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.events_bench import py_spy_summary  # noqa: E402
from scripts.servers import (  # noqa: E402
    postgres_start,
    postgres_stop,
    redis_start,
    redis_stop,
)


def setup(folder: Path, users: int) -> list[str]:
    """Servers, settings, schema, users with keys; the raw keys."""
    database, redis = postgres_start(folder / "pg"), redis_start(folder / "redis")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="apex_site.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(48),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SECURE_SSL_REDIRECT="false",
        DATABASE_URL=database,
        REDIS_URL=redis,
        APEX_ARTIFACTS_DIR=str(folder / "artifacts"),
        APEX_DATA_DIR=str(folder / "var"),
        APEX_LOG_LEVEL="WARNING",
        APEX_CELERY_EAGER="0",
    )
    (folder / "var").mkdir()
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import override_settings

    from accounts.models import User
    from accounts.services import api_key_create
    from billing.services import plan_override
    from catalog.models import Movie

    call_command("migrate", verbosity=0)
    Movie.objects.bulk_create([Movie(id=i, title=f"m{i}") for i in range(1, 2001)])
    keys = []
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"
    ):
        for i in range(users):
            user = User.objects.create(email=f"cpu-bench-{i}@example.com")
            keys.append(api_key_create(user=user, name="cpu bench")[1])
            plan_override(
                user_id=user.pk, plan_key="business", actor_id=None, reason="bench"
            )
    return keys


def spy(binary: str | None, label: str) -> tuple[subprocess.Popen, Path] | None:
    if not binary:
        return None
    out = Path(tempfile.mkdtemp()) / f"{label}.txt"
    proc = subprocess.Popen(
        [binary, "record", "--subprocesses", "--gil", "--nonblocking", "-r", "250",
         "-f", "raw",
         "-o", str(out), "--pid", str(os.getpid())],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # attached
    return proc, out


def spy_report(spied: tuple[subprocess.Popen, Path] | None, top: int = 30) -> None:
    """Stop the recording and print the functions with the most samples."""
    if spied is None:
        return
    proc, out = spied
    proc.send_signal(2)  # SIGINT: py-spy writes what it has
    proc.wait(timeout=60)
    summary = py_spy_summary([out], top=top)[out.stem]
    for name, share in summary.get("inclusive", []):
        print(f"    {100 * share:5.1f}%  {name[:120]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--batch-sizes", default="10,25,100")
    parser.add_argument("--profile", help="a py-spy binary")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="apex-cpu-bench-"))
    folder.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    try:
        keys = setup(folder, args.users)
        report = run(args, keys)
        print(json.dumps(report, indent=1))
    finally:
        if os.environ.get("DJANGO_SETTINGS_MODULE"):
            from django.db import connections

            connections.close_all()
        redis_stop(folder / "redis")
        postgres_stop(folder / "pg")
        shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace, keys: list[str]) -> dict:
    from apex_site.wsgi import application
    from learning import coordinator

    rng = random.Random(7)

    def post() -> None:
        event = {"kind": "click", "movie_id": rng.randint(1, 2000)}
        if rng.random() < 0.5:
            event.update(kind="rating", value=4.0)
        event["idempotency_key"] = secrets.token_hex(8)
        body = json.dumps(event).encode()
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/v1/events",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1",
            "HTTP_AUTHORIZATION": f"Api-Key {rng.choice(keys)}",
        }  # fmt: skip
        status: list[str] = []
        answer = application(environ, lambda s, _h, _e=None: status.append(s))
        content = b"".join(answer)
        if not status[0].startswith("202"):
            raise SystemExit(f"POST /v1/events answered {status[0]}: {content[:300]}")

    coordinator.events_drain(time_budget_s=30)  # nothing waits
    for _ in range(200):  # warm: keys, plan limits, catalog memory, pool
        post()
    coordinator.events_drain(time_budget_s=60)
    cpu, wall = [], []
    spied = spy(args.profile, "post")
    for _ in range(args.rounds):
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(args.requests):
            post()
        cpu.append(1e3 * (time.process_time() - c0) / args.requests)
        wall.append(1e3 * (time.perf_counter() - w0) / args.requests)
        coordinator.events_drain(time_budget_s=60)
    print(
        f"POST /v1/events: CPU ms per request, per round {[round(c, 3) for c in cpu]}"
    )
    spy_report(spied)
    report: dict = {
        "post_events": {
            "requests_per_round": args.requests,
            "cpu_ms": [round(c, 3) for c in cpu],
            "cpu_ms_median": round(statistics.median(cpu), 3),
            "wall_ms_median": round(statistics.median(wall), 3),
        },
        "coordinator": {},
    }
    for size in [int(s) for s in args.batch_sizes.split(",")]:
        rows = []
        spied = spy(args.profile, f"apply-{size}")
        for _ in range(args.rounds):
            for _ in range(20 * size):
                post()
            c0, w0 = time.process_time(), time.perf_counter()
            result = coordinator.events_drain(
                max_batch=size, block_ms=0, time_budget_s=120
            )
            cpu_s, wall_s = time.process_time() - c0, time.perf_counter() - w0
            rows.append((1e3 * cpu_s / result.applied, 1e3 * wall_s / result.applied))
        per_event = [round(r[0], 3) for r in rows]
        print(f"coordinator, batches of {size}: CPU ms per event {per_event}")
        spy_report(spied)
        report["coordinator"][f"batch_{size}"] = {
            "cpu_ms_per_event_median": round(statistics.median(r[0] for r in rows), 3),
            "wall_ms_per_event_median": round(statistics.median(r[1] for r in rows), 3),
            "cpu_ms_per_batch_median": round(
                size * statistics.median(r[0] for r in rows), 2
            ),
        }
    return report


if __name__ == "__main__":
    main()
