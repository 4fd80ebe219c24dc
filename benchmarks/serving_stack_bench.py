"""A production-like serving stack for the HTTP benchmark (issue 6).

``up`` starts a throw-away PostgreSQL cluster and a Redis server on free
loopback ports under ``--dir`` (default ``/tmp/httpbench``) and writes
``<dir>/env.sh``: the environment a production process needs
(``DJANGO_SETTINGS_MODULE=apex_site.settings.production``, ``DATABASE_URL``,
``REDIS_URL``, a secret key, ``APEX_ARTIFACTS_DIR``, ``APEX_DATA_DIR``).
``down`` stops both and keeps the folder (artifacts, results). ``serve``
runs uvicorn with workers on a free port for one tier and prints the port;
``measure`` serves a tier, warms every worker, reads each worker's RSS,
runs ``serving_http_bench.py --per-user-keys``, reads RSS again, stops the
server and writes ``<dir>/http-<label>.json``.

PostgreSQL and Redis are started by ``scripts/servers.py``, as for the test
suite; only the lifetime differs: they outlive this process until ``down``.

Usage::

    python benchmarks/serving_stack_bench.py up [--dir /tmp/httpbench]
    source /tmp/httpbench/env.sh
    python benchmarks/serving_stack_bench.py serve --tier 2 [--workers 2]
    python benchmarks/serving_stack_bench.py measure --tier 2 [--label t2] \\
        [--concurrency 1,8,32] [--duration 15] [--app module:application] \\
        [--client python|wrk]
    python benchmarks/serving_stack_bench.py coldboot --tier 2 [--repeat 3]
    python benchmarks/serving_stack_bench.py profile --tier 2 [--requests 300]
    python benchmarks/serving_stack_bench.py down

``coldboot`` times a fresh interpreter from its start to the first served
recommendation (``django.setup()``, ``get_runtime().warm_up()``, one
``selectors.feed_for``), measured by this parent process around the child, and
reports the child's RSS after it. ``profile`` sends ``--requests`` requests
for random users with history through the whole Django stack in-process
(test client: URL routing, API-key authentication, throttle, view,
serializer) under cProfile and prints the mean of every ``meta.timings_ms``
stage, the mean wall time per request and the top functions.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scripts.servers import (  # noqa: E402
    free_port,
    postgres_start,
    postgres_stop,
    redis_start,
    redis_stop,
    wait_for_port,
)

PYTHON = sys.executable


def up(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    database_url = postgres_start(folder / "pg")
    redis_url = redis_start(folder / "redis")
    env = {
        "DJANGO_SETTINGS_MODULE": "apex_site.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # plain HTTP on loopback: no TLS terminator in front of the benchmark
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "APEX_ARTIFACTS_DIR": str(folder / "artifacts"),
        "APEX_DATA_DIR": str(folder / "var"),
        "APEX_LOG_LEVEL": "WARNING",
    }
    lines = [f"export {k}='{v}'" for k, v in env.items()]
    (folder / "env.sh").write_text("\n".join(lines) + "\n")
    print(f"PostgreSQL at {database_url}, Redis at {redis_url}; source {folder}/env.sh")


def down(folder: Path) -> None:
    postgres_stop(folder / "pg")
    shutil.rmtree(folder / "pg", ignore_errors=True)
    redis_stop(folder / "redis")
    shutil.rmtree(folder / "redis", ignore_errors=True)
    print("stopped PostgreSQL and Redis")


SERVERS = ("uvicorn", "gunicorn", "gunicorn-sync", "granian")


@contextlib.contextmanager
def serve(
    tier: str,
    workers: int,
    folder: Path,
    app: str = "apex_site.asgi:application",
    interface: str = "auto",
    *,
    server: str = "uvicorn",
    proxy: bool = False,
    root: Path = ROOT,
    threads: int = 4,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[subprocess.Popen, int]]:
    """One server for ``tier`` on a free port, running the code in ``root``:
    ``uvicorn`` (the ASGI application, ``workers`` processes), or a WSGI
    server (``gunicorn`` gthread with ``threads`` threads, ``gunicorn-sync``,
    ``granian``) alone or, with ``proxy``, as the production shape behind
    nginx (``scripts/stack.py``). Yields (the process whose children are the
    workers, the port clients use); logs under ``folder``."""
    env = {**os.environ, "APEX_SERVING_TIER": tier, "APEX_TORCH_THREADS": "1",
           **(extra_env or {})}  # fmt: skip
    env.setdefault("OMP_NUM_THREADS", "1")
    if proxy:
        from scripts.stack import production_shape

        with production_shape(
            folder / f"stack-{tier}", env, static_root=folder / "var" / "staticfiles",
            wsgi=server, wsgi_workers=workers, wsgi_threads=threads, root=root,
        ) as stack:  # fmt: skip
            yield stack.processes["wsgi"], int(stack.address.rsplit(":", 1)[1])
        return
    port = free_port()
    log = open(folder / f"{server}-{tier}.log", "w")  # noqa: SIM115
    if server == "uvicorn":
        command = [PYTHON, "-m", "uvicorn", app, "--host",
                   "127.0.0.1", "--port", str(port), "--workers", str(workers),
                   "--lifespan", "off", "--no-access-log", "--log-level", "warning",
                   "--interface", interface]  # fmt: skip
    else:
        from scripts.stack import wsgi_command

        command = wsgi_command(server, port, workers, threads, root)
        env.update(
            APEX_WSGI_BIND=f"127.0.0.1:{port}", APEX_WSGI_WORKERS=str(workers),
            APEX_WSGI_THREADS="1" if server == "gunicorn-sync" else str(threads),
        )  # fmt: skip
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        (folder / f"{server}-{tier}.pid").write_text(str(proc.pid))
        wait_for_port(port, server, timeout=60)
        time.sleep(1)
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


WARM_RSS_MB = 200  # a bare production Django worker is ~70-95 MB here


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _workers(master: int) -> list[int]:
    """The server's worker processes: the master's children (uvicorn's
    spawned workers, gunicorn's and granian's forks)."""
    import psutil

    children = psutil.Process(master).children()
    return [c.pid for c in children if "python" in c.name() or "granian" in c.name()]


def _meter_reset() -> None:
    """Empty the billing meter's counters (``REDIS_URL``), so the Free users
    of the benchmark never reach their monthly quota across runs."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    keys = list(client.scan_iter(match="apex:meter:*", count=1000))
    if keys:
        client.delete(*keys)


def measure(args: argparse.Namespace) -> None:
    """One tier end to end: serve, warm every worker, RSS, the HTTP load
    (``serving_http_bench.py``), RSS again, stop. Results as JSON."""
    _meter_reset()
    root = args.root.resolve()
    with serve(
        args.tier, args.workers, args.dir, args.app, args.interface,
        server=args.server, proxy=args.proxy, root=root, threads=args.threads,
        extra_env={"APEX_SERVER_TIMING": "all"},
    ) as (proc, port):  # fmt: skip
        _measure(args, proc, port, root)


def _measure(args: argparse.Namespace, proc: subprocess.Popen, port: int,
             root: Path) -> None:  # fmt: skip
    import json
    import urllib.request

    base = f"http://127.0.0.1:{port}"
    # warm-up: the bundle loads lazily per worker, and which worker
    # accepts a connection is the kernel's choice, so warm until every
    # worker holds a bundle (RSS well above a bare Django process)
    workers = _workers(proc.pid)
    for _attempt in range(8):
        warm = subprocess.run(
            [PYTHON, str(ROOT / "benchmarks" / "serving_http_bench.py"),
             "--base-url", base, "--per-user-keys", "--concurrency", "8",
             "--duration", "2", "--warmup", "2", "--users", "100"],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if min(_rss_mb(pid) for pid in workers) > args.warm_rss:
            break
    with urllib.request.urlopen(f"{base}/v1/artifacts/health") as response:
        health = response.status
    rss_warm = {pid: round(_rss_mb(pid)) for pid in workers}
    cpu_before = {pid: _cpu_s(pid) for pid in workers}
    load_before = os.getloadavg()
    out_json = args.dir / f"http-{args.label}.json"
    run = subprocess.run(
        [PYTHON, str(ROOT / "benchmarks" / "serving_http_bench.py"),
         "--base-url", base, "--per-user-keys", "--concurrency",
         args.concurrency, "--duration", str(args.duration), "--out",
         str(out_json), "--client", args.client, "--path", args.path],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    load_after = os.getloadavg()
    rss_after = {pid: round(_rss_mb(pid)) for pid in workers}
    cpu_used = {pid: round(_cpu_s(pid) - cpu_before[pid], 1) for pid in workers}
    report = json.loads(out_json.read_text()) if out_json.exists() else {}
    report.update(
        label=args.label, tier=args.tier, app=args.app, workers=args.workers,
        interface=args.interface, server=args.server, proxy=args.proxy,
        threads=args.threads, root=str(root),
        health_status=health, warm_rc=warm.returncode,
        rss_mb_after_warmup=rss_warm, rss_mb_after_load=rss_after,
        worker_cpu_s_during_load=cpu_used,
        loadavg_before=load_before, loadavg_after=load_after,
        table=run.stdout, stderr_tail=run.stderr[-2000:],
    )  # fmt: skip
    out_json.write_text(json.dumps(report, indent=2))
    print(
        f"== {args.label} (tier {args.tier}, {args.server}"
        f"{' behind nginx' if args.proxy else ''}, {root.name})"
        f" load {load_before[0]:.2f}"
        f" -> {load_after[0]:.2f}; RSS MB warm {rss_warm} after {rss_after};"
        f" worker CPU s during load {cpu_used}"
    )
    print(run.stdout, run.stderr[-1500:] if run.returncode else "", flush=True)


_FIRST_RECOMMENDATION = """
import os, sys, time
import django
django.setup()
from django.contrib.auth import get_user_model
from learning.models import Interaction
from recommendations import selectors
from recommendations.serving.runtime import get_runtime
bundle = get_runtime().warm_up()
user = get_user_model().objects.get(pk=Interaction.objects.values_list(
    "user_id", flat=True).first())
result = selectors.feed_for(user_id=user.pk, n=10)
assert result.items and not result.meta.fallback, result.meta
rss = [l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]
print(f"SERVED tier={bundle.tier.tier} rss_mb={int(rss) / 1024:.0f}", flush=True)
"""


def coldboot(tier: str, repeat: int) -> None:
    """Seconds from a fresh interpreter's start to its first served list."""
    env = {**os.environ, "APEX_SERVING_TIER": tier, "APEX_TORCH_THREADS": "1"}
    env.setdefault("OMP_NUM_THREADS", "1")
    for _ in range(repeat):
        started = time.perf_counter()
        out = subprocess.run(
            [PYTHON, "-c", _FIRST_RECOMMENDATION],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        line = [x for x in out.stdout.splitlines() if x.startswith("SERVED")][-1]
        print(f"tier {tier}: first recommendation after {elapsed:.2f} s ({line})")


def profile(tier: str, requests: int, top: int) -> None:
    """In-process requests through the whole Django stack under cProfile."""
    import cProfile
    import pstats
    import random
    import statistics

    os.environ["APEX_SERVING_TIER"] = tier
    os.environ.setdefault("APEX_TORCH_THREADS", "1")
    import django

    django.setup()
    from django.test import Client

    from accounts.models import User
    from accounts.services import api_key_create
    from learning.models import Interaction
    from recommendations.serving.runtime import get_runtime

    get_runtime().warm_up()
    user_ids = sorted(set(Interaction.objects.values_list("user_id", flat=True)))
    random.Random(0).shuffle(user_ids)
    user_ids = user_ids[:50]
    users = User.objects.in_bulk(user_ids)
    keys = {u: api_key_create(user=users[u], name="profile")[1] for u in user_ids}
    client = Client(SERVER_NAME="127.0.0.1")

    def one(i: int) -> dict:
        uid = user_ids[i % len(user_ids)]
        response = client.get(
            f"/v1/recommendations/user/{uid}?n=10&explain=true",
            HTTP_AUTHORIZATION=f"Api-Key {keys[uid]}",
        )
        assert response.status_code == 200, response.content[:300]
        return response.json()["meta"]

    for i in range(30):  # warm every code path
        one(i)
    stages: dict[str, list[float]] = {}
    walls = []
    profiler = cProfile.Profile()
    for i in range(requests):
        started = time.perf_counter()
        profiler.enable()
        meta = one(i)
        profiler.disable()
        walls.append(1e3 * (time.perf_counter() - started))
    # a second pass without the profiler: its overhead inflates the first
    plain = []
    for i in range(requests):
        started = time.perf_counter()
        meta = one(i)
        plain.append(1e3 * (time.perf_counter() - started))
        for name, value in meta["timings_ms"].items():
            stages.setdefault(name, []).append(value)
    print(f"tier {tier}: {requests} requests in-process")
    print(
        f"  wall per request, no profiler: mean {statistics.fmean(plain):.2f} ms, "
        f"p50 {statistics.median(plain):.2f} ms"
    )
    print(f"  wall per request, profiled: mean {statistics.fmean(walls):.2f} ms")
    for name, values in sorted(stages.items()):
        print(f"  stage {name} (no profiler): mean {statistics.fmean(values):.3f} ms")
    stats = pstats.Stats(profiler).sort_stats("cumulative")
    stats.print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "action",
        choices=("up", "down", "serve", "measure", "coldboot", "profile"),
    )
    parser.add_argument("--dir", type=Path, default=Path("/tmp/httpbench"))
    parser.add_argument("--tier", default="2")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--app", default="apex_site.asgi:application")
    parser.add_argument(
        "--interface", default="auto", help="uvicorn --interface (experiments)"
    )
    parser.add_argument("--label", default=None)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--server", choices=SERVERS, default="uvicorn")
    parser.add_argument(
        "--warm-rss", type=float, default=WARM_RSS_MB,
        help="MB each worker must pass to count as warm (tier 3 ~150; 0: no wait)",
    )  # fmt: skip
    parser.add_argument("--proxy", action="store_true", help="behind nginx")
    parser.add_argument("--threads", type=int, default=4, help="gthread threads")
    parser.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help="the checkout to serve (e.g. a `git worktree` of the previous code)",
    )
    parser.add_argument(
        "--path", default="/v1/recommendations/user/{user}?{query}",
        help="`/v1/platform/ping`: the framework floor",
    )  # fmt: skip
    parser.add_argument("--client", choices=("python", "wrk"), default="python")
    args = parser.parse_args()
    if args.action == "up":
        up(args.dir)
    elif args.action == "down":
        down(args.dir)
    elif args.action == "coldboot":
        coldboot(args.tier, args.repeat)
    elif args.action == "profile":
        profile(args.tier, args.requests, args.top)
    elif args.action == "measure":
        args.label = args.label or f"tier{args.tier}"
        measure(args)
    else:
        with serve(
            args.tier, args.workers, args.dir, args.app, args.interface,
            server=args.server, proxy=args.proxy, root=args.root.resolve(),
            threads=args.threads,
        ) as (_proc, port):  # fmt: skip
            print(port, flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)


if __name__ == "__main__":
    main()
