"""Real-time events end to end on a production-shaped stack (issue 13).

One command brings up, on 127.0.0.1 only and in a temporary folder, a copy
of the code (``--source worktree``, default: the working tree as it is at
the start; ``head``: the last commit), PostgreSQL and Redis
(``scripts/servers.py``), ``manage.py migrate``, ``manage.py bootstrap``
(ML-100K + the TMDB CSVs from ``/work/shared/data``, no search index; about
20 s), uvicorn ``apex_site.asgi:application --workers 2``, one Celery worker
for ``-Q learning`` (the online coordinator), one for ``-Q default`` (the
feed refreshes), both ``--concurrency 2`` as in ``docker-compose.yml``, one
for ``-Q online`` (the online KAN's one learner; a no-op without artifacts),
and Celery beat (the drain safety net every 2 s and the outbox catch-up every
60 s, as compose runs it; ``--no-beat`` leaves it out). All run with one
production environment: ``apex_site.settings.production``,
``APEX_THROTTLE_USER=1000000/min``, the billing meter on as in production
(every user of the bench on the Business plan through the admin's plan
override: 2,000,000 calls a month, 200 a second; ``--no-metering``: DRF's
throttle instead), no model artifacts (feeds are the database fallback).
Users are MovieLens users of the bootstrap, each with an API key of their
own; the websocket users (few history events) get a logged-in session
(``Client.force_login`` in this process, on the same database and
``DJANGO_SECRET_KEY``). Then:

1. **ingest**: single-event ``POST /v1/events`` at concurrency 1 and 8 for
   ``--duration`` s (req/s, p50/p95/p99, errors) and batches of 500 at
   concurrency 4 (events/s, errors); then the wait until the coordinator has
   applied all of them and the stream is empty (events applied/s). The feed
   refreshes the ingest queued that the default worker has not done by then
   are dropped (``queue_purge``), so phase 2 starts with an empty queue.
2. **event -> live feed**: K open websockets (``/ws/feed/``, session cookie
   + Origin), positive events at a fixed rate: all of it round-robin over
   those users (``--socket-rate 0``, the default: each socket user sends
   rate/K events a second), or ``--socket-rate`` r events a second from each
   socket user and the rest of the rate from the ingest users, who have no
   socket (the other users' load), after ``--live-warmup`` s of the same
   load that is not measured (workers started for the bench have cold
   caches and connection pools: the steady state is measured; the per-event
   timeline in the JSON shows the transient when it is 0);
   per event the time from sending its POST to the ``feed.update`` that
   covers it, split into POST -> row (``created_at``) -> applied
   (``learning_appliedevent.applied_at``, taken at the start of the
   coordinator's batch transaction) -> feed computed (the push's
   ``meta.computed_at``) -> update received; the stream and
   queue lengths every 250 ms; for a sample, the time until
   ``GET /v1/recommendations/user/{id}`` stops listing the clicked movie
   (its former first item). Then, on the quiet stack, the last legs alone:
   a ``group_send`` from this process to each socket, and a
   ``recommendations.feed_refresh`` task sent from here to each socket.
3. **faults**: single events at ``--fault-rate`` for ``--fault-seconds``
   (at most ``--fault-events``) while the bench ``kill -9``s the learning
   worker (its process group, once the stream has entries delivered and not
   acknowledged: mid-batch) and starts it again; restarts Redis on the same
   port (``redis_stop`` + ``redis_start``; this Redis has no persistence, so
   the restart wipes the stream, the Celery queues and the channel layer -
   harsher than compose's append-only Redis) and then sends
   ``learning.republish_events`` (the outbox catch-up beat sends every 60 s)
   at once and every 10 s; and ``kill -9``s one uvicorn worker (uvicorn's
   supervisor starts another). Afterwards every request that got no 202 is
   retried with the same idempotency key (``created: false`` = the first
   try had been recorded), the bench waits for the backlog, checks that a
   push still reaches every socket (the client reconnects as the page's
   script does), and counts over every event of the run that got a 202:
   missing from ``learning_interaction``, not applied, applied twice
   (``UserProfile.events_applied`` and ``ItemActivity.events`` against the
   ``learning_appliedevent`` rows), dead letters. Recovery of a fault = from
   the fault until every event accepted before it is applied; for the
   uvicorn kill also until the supervisor replaced the worker and the last
   request that failed.

Delivery rule (phase 2): an event of user u posted at t with id e counts as
delivered at the first ``feed.update`` on u's socket received after t whose
``payload.cause.event_id >= e``. The coordinator coalesces: one refresh per
user per applied micro-batch, caused by the user's newest (positive) event
of the batch, so one update can deliver several events.

The Celery workers log at INFO (``--worker-log-level``): their "received" /
"succeeded in" lines give each task's run time and wait per phase. At the
end an in-process profile (cProfile) of ``POST /v1/events``, of one
``feed_refresh`` and of one coordinator micro-batch (``_apply``, 100 events).

``--phases`` picks phases (``ingest,live,faults``); ``--batch-size 0`` leaves
the batches out of phase 1; ``--py-spy PATH`` samples every server process
(holding the GIL, so CPU and not waits) during ``--py-spy-phase`` (``live``,
or ``ingest``: the single POSTs at the highest concurrency) and reports the
functions with the most samples.

Everything is bounded (durations, event counts, waits) and every process and
the temporary folder are removed on exit (``--keep`` keeps the folder). The
client (asyncio, raw HTTP/1.1 keep-alive, ``websockets``) shares the cores
with the servers: the load average and each component's CPU use per phase
are reported.

Usage::

    .venv/bin/python benchmarks/events_bench.py [--quick] [--out result.json]
        [--source worktree|head] [--duration 20] [--rate 200] [--sockets 20]
        [--socket-rate 1] [--phases ingest,live,faults] [--batch-size 500]
        [--fault-seconds 60] [--fault-rate 170] [--keep] [--no-beat]
        [--py-spy PATH [--py-spy-phase live|ingest]]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

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
DATA = Path("/work/shared/data")
STREAM, GROUP = "apex:events", "learning"
T0 = time.time()


def log(message: str) -> None:
    load = os.getloadavg()[0]
    print(f"[{time.time() - T0:7.1f}s load {load:4.2f}] {message}", flush=True)


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``values`` need not be sorted)."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))
    return round(ordered[k], 2)


def dist(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "max": round(max(values), 2) if values else None,
        "mean": round(statistics.fmean(values), 2) if values else None,
    }


# ================================================================ processes
def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(entry))
    return out


def tree(pid: int) -> list[int]:
    kids = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def cpu_s(pids: list[int]) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / tick
    return total


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Refused|Timeout)\b.*")


class Stack:
    """The servers of one run, in ``folder``; ``close()`` stops everything."""

    def __init__(
        self, folder: Path, beat: bool, log_level: str, metering: bool
    ) -> None:
        self.folder = folder
        self.metering = metering
        self.src = folder / "src"
        self.log_level = log_level
        self.beat = beat
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.redis_port = free_port()
        self.http_port = free_port()
        self.web = "uvicorn"
        self.env: dict[str, str] = {}
        self.database_url = ""
        self.redis_url = ""
        self.restarts: dict[str, int] = {}

    # ---------------------------------------------------------- start
    def snapshot(self, source: str) -> dict[str, Any]:
        """Copy the code the servers run to ``<folder>/src``: ``head`` (the
        last commit, ``git archive``) or ``worktree`` (tracked + untracked,
        not ignored). Other people edit the tree while the bench runs, and a
        process restarted mid-run (the fault phase) must run the same code
        as the rest."""
        self.src.mkdir(parents=True)
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip
        if source == "head":
            archive = subprocess.run(
                ["git", "archive", "--format=tar", "HEAD"], cwd=ROOT,
                capture_output=True, check=True,
            ).stdout  # fmt: skip
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(self.src, filter="data")
                copied = len(tar.getnames())
            return {"source": "head", "commit": commit, "files": copied}
        files = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout.decode().split("\0")  # fmt: skip
        copied = 0
        for name in files:
            path = ROOT / name
            if not name or not path.is_file():
                continue
            target = self.src / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            copied += 1
        return {"source": "worktree", "head": commit, "files": copied}

    def start_databases(self) -> None:
        self.database_url = postgres_start(self.folder / "pg")
        self.redis_url = redis_start(self.folder / "redis", port=self.redis_port)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "apex_site.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "APEX_ARTIFACTS_DIR": str(self.folder / "artifacts"),
            "APEX_DATA_DIR": str(self.folder / "var"),
            "APEX_LOG_LEVEL": "WARNING",
            "APEX_THROTTLE_USER": "1000000/min",
            # the meter as production runs it (the users get a plan the load
            # fits in: prepare_users); --no-metering: DRF's throttle
            "APEX_BILLING_METERING": "true" if self.metering else "false",
            "APEX_CELERY_EAGER": "0",
            "APEX_TORCH_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "APEX_MOVIELENS_PATH": str(DATA / "ml-100k"),
            "APEX_TMDB_MOVIES_CSV": str(DATA / "tmdb" / "tmdb_5000_movies.csv"),
            "APEX_TMDB_CREDITS_CSV": str(
                DATA / "tmdb" / "tmdb_10866_cast_director.csv"
            ),
        }
        (self.folder / "var").mkdir(parents=True, exist_ok=True)

    def manage(self, *args: str, timeout: float = 600) -> str:
        out = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=self.src, env=self.env, timeout=timeout,
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if out.returncode:
            raise RuntimeError(f"manage.py {args} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout + out.stderr

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        path = self.folder / f"{name}.log"
        self.logs[name] = path
        out = open(path, "a")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            argv, cwd=self.src, env={**self.env, **(env or {})}, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        out.close()
        self.procs[name] = proc
        return proc

    def start_uvicorn(self, workers: int) -> None:
        self._spawn(
            "uvicorn",
            [PYTHON, "-m", "uvicorn", "apex_site.asgi:application", "--host",
             "127.0.0.1", "--port", str(self.http_port), "--workers", str(workers),
             "--lifespan", "off", "--no-access-log", "--log-level", "warning"],
        )  # fmt: skip

    def start_production_shape(self, workers: int, threads: int = 4) -> None:
        """The production shape (``scripts/stack.py``, as docker-compose runs
        it): nginx on ``http_port`` routing HTTP to granian (``workers`` WSGI
        workers, ``threads`` threads each) and ``/ws/`` to one uvicorn process."""
        from scripts.stack import (
            nginx_binary,
            nginx_main_config,
            render_server_block,
            wsgi_command,
        )

        self.web = "production"
        wsgi_port, asgi_port = free_port(), free_port()
        (self.folder / "apex.conf").write_text(
            render_server_block(
                listen=f"127.0.0.1:{self.http_port}",
                wsgi_upstream=f"127.0.0.1:{wsgi_port}",
                asgi_upstream=f"127.0.0.1:{asgi_port}",
                static_root=self.folder / "var" / "staticfiles",
            )
        )
        (self.folder / "nginx.conf").write_text(nginx_main_config(self.folder))
        self._spawn(
            "wsgi", wsgi_command("granian", wsgi_port, workers, threads, self.src)
        )
        self._spawn(
            "uvicorn",
            [PYTHON, "-m", "uvicorn", "apex_site.asgi:application", "--host",
             "127.0.0.1", "--port", str(asgi_port), "--lifespan", "off",
             "--no-access-log", "--log-level", "warning"],
        )  # fmt: skip
        self._spawn(
            "nginx",
            [nginx_binary(), "-c", str(self.folder / "nginx.conf"), "-p",
             str(self.folder), "-e", str(self.folder / "nginx-error.log")],
        )  # fmt: skip
        wait_for_port(wsgi_port, "granian", timeout=90)
        wait_for_port(asgi_port, "uvicorn", timeout=90)

    def start_worker(
        self, queue: str, concurrency: int, nice: int = 0
    ) -> subprocess.Popen:
        """A Celery worker for ``queue``; ``nice`` > 0 runs it (and its pool)
        at a lower CPU priority than the web processes."""
        node = "learner" if queue == "learning" else queue
        return self._spawn(
            f"worker-{queue}",
            [*(["nice", "-n", str(nice)] if nice else []),
             PYTHON, "-m", "celery", "-A", "apex_site", "worker", "-Q", queue,
             "-n", f"{node}@%h", "-l", self.log_level, "--concurrency",
             str(concurrency)],
            # INFO: Celery's "received" / "succeeded in" lines time each task
            {"APEX_LOG_LEVEL": self.log_level},
        )  # fmt: skip

    def start_beat(self) -> None:
        self._spawn(
            "beat",
            [PYTHON, "-m", "celery", "-A", "apex_site", "beat", "-l", "WARNING",
             "--schedule", str(self.folder / "celerybeat-schedule")],
        )  # fmt: skip

    def uvicorn_workers(self) -> list[int]:
        """The HTTP worker processes: uvicorn's, or granian's in the
        production shape."""
        if self.web == "production":
            return list(_children().get(self.procs["wsgi"].pid, []))
        master = self.procs["uvicorn"].pid
        return [p for p in _children().get(master, []) if "spawn_main" in cmdline(p)]

    def py_spy(self, binary: Path, out: Path | None, seconds: float) -> list[Path]:
        """Sample every server process (and its pool's children) for
        ``seconds`` with py-spy; the folded stacks, one file per process."""
        folder = (out.parent if out else self.folder) / "py-spy"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in ("wsgi", "uvicorn", "worker-learning", "worker-default",
                     "worker-online"):  # fmt: skip
            if name not in self.procs:
                continue
            path = folder / f"{name}.folded"
            subprocess.Popen(
                [str(binary), "record", "--pid", str(self.procs[name].pid),
                 "--subprocesses", "--gil", "--duration", str(int(seconds)),
                 "--rate", "100",
                 "--format", "raw", "--nonblocking", "-o", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            paths.append(path)
        return paths

    # ---------------------------------------------------------- faults
    def kill_group(self, name: str) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()

    def restart_redis(self, down_s: float) -> None:
        redis_stop(self.folder / "redis")
        time.sleep(down_s)
        redis_start(self.folder / "redis", port=self.redis_port)

    # ---------------------------------------------------------- accounting
    def cpu(self) -> dict[str, float]:
        out = {name: cpu_s(tree(p.pid)) for name, p in self.procs.items()}
        if self.web == "production":  # each WSGI worker: is the load balanced?
            for i, pid in enumerate(sorted(self.uvicorn_workers())):
                out[f"wsgi worker {i + 1}"] = cpu_s([pid])
        pg_pid = self.folder / "pg" / "data" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError):
            out["postgres"] = cpu_s(tree(int(pg_pid.read_text().split()[0])))
        with contextlib.suppress(OSError, ValueError):
            out["redis"] = cpu_s(
                [int((self.folder / "redis" / "redis.pid").read_text())]
            )
        t = os.times()
        out["bench (client)"] = t.user + t.system
        return out

    def log_problems(self) -> dict[str, Any]:
        """Tracebacks and ERROR lines in each server log (counts + a tail)."""
        out = {}
        for name, path in self.logs.items():
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace")
                lines = text.splitlines()
                bad = [
                    i for i, line in enumerate(lines)
                    if "Traceback" in line or " ERROR" in line or '"ERROR"' in line
                    or "CRITICAL" in line
                ]  # fmt: skip
                errors: dict[str, int] = {}
                for line in lines:
                    if _EXCEPTION_LINE.match(line):
                        key = line[:160]
                        errors[key] = errors.get(key, 0) + 1
                top = sorted(errors.items(), key=lambda kv: -kv[1])[:8]
                out[name] = {
                    "lines": len(lines),
                    "problem_lines": len(bad),
                    "exceptions": dict(top),
                    "first_problems": [
                        "\n".join(lines[i : i + 12])[:1500] for i in bad[:3]
                    ],
                    "tail": "\n".join(lines[-15:])[-2000:],
                }
        return out

    # ---------------------------------------------------------- stop
    def close(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # strays of the group too
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        redis_stop(self.folder / "redis")
        postgres_stop(self.folder / "pg", mode="immediate")


# ================================================================ HTTP client
class Connection:
    """One keep-alive HTTP/1.1 connection (Content-Length or chunked)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = time.monotonic()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1", self.port
            )
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        fields = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.strip()
        if "content-length" in fields:
            data = await self.reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            data = b"".join(parts)
        else:
            raise ConnectionError("response without a length")
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, data


NET_ERRORS = (
    OSError, ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError,
    asyncio.LimitOverrunError, ValueError,
)  # fmt: skip


class Pool:
    """Keep-alive connections handed out to concurrent senders."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.free: list[Connection] = []

    async def call(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b"",
        timeout: float = 15.0,
    ) -> tuple[int, bytes]:  # fmt: skip
        conn = None
        while self.free:
            conn = self.free.pop()
            # uvicorn closes a keep-alive connection idle for 5 s: drop it first
            if time.monotonic() - conn.last_used < 4.0:
                break
            await conn.close()
            conn = None
        conn = conn or Connection(self.port)
        try:
            result = await asyncio.wait_for(
                conn.request(method, path, headers, body), timeout
            )
        except BaseException:
            await conn.close()
            raise
        conn.last_used = time.monotonic()
        self.free.append(conn)
        return result

    async def close(self) -> None:
        for conn in self.free:
            await conn.close()
        self.free.clear()


# ================================================================ the data
@dataclass
class Users:
    keys: dict[int, str]  # user id -> raw API key
    cookies: dict[int, str]  # socket users: session cookie value
    ingest: list[int]
    batch: list[int]
    sockets: list[int]
    faults: list[int]
    movies: list[int]
    cookie_name: str


def prepare_users(args: argparse.Namespace, stack: Stack) -> Users:
    """MovieLens users of the bootstrap, an API key each; sessions for the
    websocket users (few history events, so the seen-set stays exact)."""
    import django

    os.environ.update(stack.env)
    # the snapshot the servers run (Celery's Django fixup puts the working
    # directory first on sys.path)
    sys.path.insert(0, str(stack.src))
    os.chdir(stack.src)
    django.setup()
    from django.conf import settings
    from django.db import connections
    from django.db.models import Count
    from django.test import Client

    from accounts.models import User
    from accounts.services import api_key_create
    from catalog.models import Movie
    from learning.models import Interaction

    counts = dict(
        Interaction.objects.values("user_id")
        .annotate(n=Count("id"))
        .values_list("user_id", "n")
    )
    rng = random.Random(args.seed)
    small = sorted(u for u, n in counts.items() if 20 <= n <= 80)
    rng.shuffle(small)
    sockets = small[: args.sockets]
    rest = sorted(set(counts) - set(sockets))
    rng.shuffle(rest)
    n = args.users
    ingest, batch, faults = rest[:n], rest[n : 2 * n], rest[2 * n : 3 * n]
    users = User.objects.in_bulk([*sockets, *ingest, *batch, *faults])
    keys = {
        uid: api_key_create(user=user, name="events bench")[1]
        for uid, user in users.items()
    }
    if stack.metering:  # a plan whose quota and rate the load fits in
        from django.test.utils import override_settings

        from billing.services import plan_override

        # the plan change mails each user: kept in this process's memory
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"
        ):
            for uid in users:
                plan_override(
                    user_id=uid,
                    plan_key="business",
                    actor_id=None,
                    reason="events bench",
                )
    cookies = {}
    for uid in sockets:
        client = Client()
        client.force_login(users[uid])
        cookies[uid] = client.cookies[settings.SESSION_COOKIE_NAME].value
    movies = list(Movie.objects.values_list("id", flat=True))
    connections.close_all()
    return Users(
        keys, cookies, ingest, batch, sockets, faults, movies,
        settings.SESSION_COOKIE_NAME,
    )  # fmt: skip


def auth_header(users: Users, uid: int) -> dict[str, str]:
    return {"Authorization": f"Api-Key {users.keys[uid]}"}


KINDS = [("click", 0.5), ("watch", 0.2), ("rating", 0.2), ("watchlist", 0.1)]


def make_event(rng: random.Random, movies: list[int], positive: bool = False) -> dict:
    kinds = KINDS[:3] if positive else KINDS
    kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
    event: dict[str, Any] = {"kind": kind, "movie_id": rng.choice(movies)}
    if kind == "rating":
        event["value"] = rng.randint(1, 10) / 2
    elif kind == "watch":
        event["value"] = round(rng.uniform(0.1, 1.0), 2)
    elif kind == "watchlist":
        event["value"] = rng.choice((0, 1))
    event["idempotency_key"] = uuid.uuid4().hex
    return event


# ================================================================ monitoring
class Probe:
    """Blocking reads of PostgreSQL and Redis for the bench (own connections;
    call from threads)."""

    def __init__(self, database_url: str, redis_url: str) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self._db = None
        self._redis = None
        self._lock = threading.Lock()

    def sql(self, query: str, params: Any = None) -> list[tuple]:
        import psycopg

        with self._lock:
            for attempt in range(2):
                try:
                    if self._db is None or self._db.closed:
                        self._db = psycopg.connect(self.database_url, autocommit=True)
                    return self._db.execute(query, params).fetchall()
                except psycopg.OperationalError:
                    self._db = None
                    if attempt:
                        raise
        return []

    def redis(self):
        import redis

        if self._redis is None:
            self._redis = redis.Redis.from_url(
                self.redis_url, socket_timeout=2, socket_connect_timeout=1
            )
        return self._redis

    def backlog(self) -> dict[str, Any] | None:
        try:
            r = self.redis()
            groups = {g["name"].decode(): g for g in r.xinfo_groups(STREAM)}
            g = groups.get(GROUP, {})
            return {
                "length": r.xlen(STREAM),
                "pending": int(g.get("pending", 0)),
                "lag": g.get("lag"),
                "default_queue": r.llen("default"),
                "learning_queue": r.llen("learning"),
            }
        except Exception as exc:  # noqa: BLE001 - Redis down or stream gone
            return {"error": type(exc).__name__}

    def applied_count(self, ids: list[int]) -> int:
        if not ids:
            return 0
        return self.sql(
            "SELECT count(*) FROM learning_appliedevent WHERE event_id = ANY(%s)",
            (ids,),
        )[0][0]


def cpu_share(before: dict[str, float], after: dict[str, float], secs: float) -> dict:
    """Cores used by each component over ``secs``."""
    return {
        k: round((after[k] - before[k]) / secs, 2)
        if k in before and after[k] >= before[k] else "restarted"
        for k in after
        if secs > 0
    }  # fmt: skip


# ================================================================ phase 1
async def ingest_single(
    pool: Pool, users: Users, concurrency: int, duration: float, warmup: float,
    rng: random.Random, accepted: dict[int, float],
) -> dict:  # fmt: skip
    lat: list[float] = []
    errors: dict[str, int] = {}
    start = time.time()
    record_from, stop_at = start + warmup, start + warmup + duration
    done = 0

    async def worker(w: int) -> None:
        nonlocal done
        wrng = random.Random(rng.random())
        while time.time() < stop_at:
            uid = wrng.choice(users.ingest)
            body = json.dumps(make_event(wrng, users.movies)).encode()
            headers = {"Authorization": f"Api-Key {users.keys[uid]}"}
            t = time.time()
            try:
                status, data = await pool.call("POST", "/v1/events", headers, body)
            except NET_ERRORS as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            if status != 202:
                errors[f"http_{status}"] = errors.get(f"http_{status}", 0) + 1
                continue
            for e in json.loads(data)["events"]:
                accepted[e["id"]] = t
            if t >= record_from:
                lat.append(1e3 * (time.time() - t))
                done += 1

    async def progress() -> None:
        while time.time() < stop_at:
            await asyncio.sleep(5)
            secs = max(0.1, time.time() - record_from)
            log(f"  single c={concurrency}: {done} accepted, {done / secs:.0f} req/s")

    ticker = asyncio.create_task(progress())
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    ticker.cancel()
    secs = time.time() - record_from
    return {
        "concurrency": concurrency,
        "seconds": round(secs, 1),
        "requests": len(lat),
        "req_per_s": round(len(lat) / secs, 1),
        "latency_ms": dist(lat),
        "errors": errors,
    }


async def ingest_batch(
    pool: Pool, users: Users, concurrency: int, duration: float, size: int,
    rng: random.Random, accepted: dict[int, float],
) -> dict:  # fmt: skip
    lat: list[float] = []
    errors: dict[str, int] = {}
    events = 0
    start = time.time()
    stop_at = start + duration

    async def worker(w: int) -> None:
        nonlocal events
        wrng = random.Random(rng.random())
        while time.time() < stop_at:
            uid = wrng.choice(users.batch)
            batch = [make_event(wrng, users.movies) for _ in range(size)]
            body = json.dumps({"events": batch}).encode()
            headers = {"Authorization": f"Api-Key {users.keys[uid]}"}
            t = time.time()
            try:
                status, data = await pool.call(
                    "POST", "/v1/events", headers, body, timeout=60
                )
            except NET_ERRORS as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            if status != 202:
                errors[f"http_{status}"] = errors.get(f"http_{status}", 0) + 1
                continue
            got = json.loads(data)["events"]
            for e in got:
                accepted[e["id"]] = t
            events += len(got)
            lat.append(1e3 * (time.time() - t))

    async def progress() -> None:
        while time.time() < stop_at:
            await asyncio.sleep(5)
            secs = max(0.1, time.time() - start)
            log(f"  batch c={concurrency}: {events} events, {events / secs:.0f} ev/s")

    ticker = asyncio.create_task(progress())
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    ticker.cancel()
    secs = time.time() - start
    return {
        "concurrency": concurrency,
        "batch_size": size,
        "seconds": round(secs, 1),
        "requests": len(lat),
        "events": events,
        "events_per_s": round(events / secs, 1),
        "latency_ms": dist(lat),
        "errors": errors,
    }


async def wait_applied(
    probe: Probe, ids: list[int], timeout: float, label: str,
    tick: Callable[[], None] | None = None, stream_empty: bool = False,
) -> dict:  # fmt: skip
    """Until every id in ``ids`` is applied (or ``timeout``): the drain rate;
    with ``stream_empty`` also until the stream has nothing left to read."""
    start = time.time()
    first = await asyncio.to_thread(probe.applied_count, ids)
    count, last_log = first, start
    while count < len(ids) and time.time() - start < timeout:
        await asyncio.sleep(0.5)
        if tick:
            tick()
        count = await asyncio.to_thread(probe.applied_count, ids)
        if time.time() - last_log >= 5:
            last_log = time.time()
            backlog = await asyncio.to_thread(probe.backlog)
            log(f"  {label}: {count}/{len(ids)} applied; stream {backlog}")
    secs = time.time() - start
    out = {
        "events": len(ids),
        "applied_at_start": first,
        "applied": count,
        "seconds": round(secs, 1),
        "drained": count >= len(ids),
        "applied_per_s_while_waiting": round((count - first) / secs, 1)
        if secs
        else None,
    }
    if not stream_empty:
        return out
    # then the entries left in the stream (duplicates: outbox republishes)
    backlog = await asyncio.to_thread(probe.backlog) or {}
    out["stream_left_when_applied"] = backlog
    while time.time() - start < timeout:
        if backlog.get("lag") == 0 and backlog.get("pending") == 0:
            break
        await asyncio.sleep(0.5)
        backlog = await asyncio.to_thread(probe.backlog) or {}
        if time.time() - last_log >= 5:
            last_log = time.time()
            log(f"  {label}: all applied; stream still holds {backlog}")
    out["seconds_until_stream_empty"] = round(time.time() - start, 1)
    out["stream_empty"] = backlog.get("lag") == 0 and backlog.get("pending") == 0
    return out


# ================================================================ phase 2
@dataclass
class Socket:
    user_id: int
    updates: list[tuple[float, int | None]] = field(default_factory=list)
    computed: dict[int, float] = field(
        default_factory=dict
    )  # cause -> meta.computed_at
    probes: list[tuple[float, float]] = field(default_factory=list)
    connects: int = 0
    drops: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def hold_socket(
    sock: Socket, port: int, cookie: str, stop: asyncio.Event, joined: asyncio.Event
) -> None:
    """Keep ``sock`` connected (reconnect after a drop), recording updates."""
    from websockets.asyncio.client import connect

    origin = f"http://127.0.0.1:{port}"
    while not stop.is_set():
        try:
            async with connect(
                f"ws://127.0.0.1:{port}/ws/feed/",
                additional_headers={"Cookie": cookie, "Origin": origin},
                open_timeout=10, max_size=None, ping_interval=None,
            ) as ws:  # fmt: skip
                await ws.send(json.dumps({"type": "ping"}))
                sock.connects += 1
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        continue
                    now = time.time()
                    msg = json.loads(raw)
                    if msg.get("type") == "pong":
                        joined.set()
                    elif msg.get("type") == "feed.update":
                        payload = msg.get("payload") or {}
                        if "probe" in payload:  # push_path's direct group_send
                            sock.probes.append((now, payload["probe"]))
                            continue
                        cause = payload.get("cause") or {}
                        sock.updates.append((now, cause.get("event_id")))
                        computed = (payload.get("meta") or {}).get("computed_at")
                        if computed and cause.get("event_id") is not None:
                            sock.computed[cause["event_id"]] = datetime.fromisoformat(
                                computed
                            ).timestamp()
        except Exception as exc:  # noqa: BLE001 - record and reconnect
            if stop.is_set():
                return
            sock.drops.append(time.time())
            sock.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(0.5)


def _frame(text: str) -> str:
    """py-spy's ``function (path/file.py:line)`` as ``function@file.py``."""
    name, _, where = text.partition(" (")
    return f"{name}@{where.rsplit('/', 1)[-1].split(':')[0]}"


def _shares(counts: dict[str, int], total: int, top: int) -> list[tuple[str, float]]:
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return [(k, round(v / max(1, total), 3)) for k, v in ranked]


def py_spy_summary(paths: list[Path], wait_s: float = 30.0, top: int = 25) -> dict:
    """Per process: samples, and the functions with the most samples
    anywhere on the stack (inclusive) and at the top of it (self)."""
    deadline = time.time() + wait_s
    out: dict[str, Any] = {}
    for path in paths:
        while not path.exists() and time.time() < deadline:
            time.sleep(0.5)
        if not path.exists():
            out[path.stem] = {"error": "no py-spy output"}
            continue
        time.sleep(1.0)  # the file is written at the end of the recording
        total, inclusive, own = 0, {}, {}
        for line in path.read_text(errors="replace").splitlines():
            stack_text, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [_frame(f) for f in stack_text.split(";")[1:]]
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + n
            if frames:
                own[frames[-1]] = own.get(frames[-1], 0) + n
        out[path.stem] = {
            "samples": total,
            "inclusive": _shares(inclusive, total, top),
            "self": _shares(own, total, top),
        }
    return out


def delivery(
    sent: list[tuple[int, float, int]], sockets: dict[int, Socket]
) -> tuple[list[float], int, dict[int, float]]:
    """Per event (user, sent at, id): latency to the first covering update."""
    lat: list[float] = []
    covered: dict[int, float] = {}
    for uid, t, event_id in sent:
        for recv, cause in sockets[uid].updates:
            if recv >= t and cause is not None and cause >= event_id:
                lat.append(1e3 * (recv - t))
                covered[event_id] = recv
                break
    return lat, len(sent) - len(lat), covered


async def live_feed(
    pool: Pool, users: Users, sockets: dict[int, Socket], rate: float,
    duration: float, max_events: int, wait: float, samples: int,
    rng: random.Random, accepted: dict[int, float], probe: Probe,
    socket_rate: float = 0.0, warmup: float = 0.0,
    measuring: Callable[[], None] = lambda: None,
) -> dict:  # fmt: skip
    """Events at ``rate``/s: ``socket_rate``/s from each websocket user (all
    of ``rate`` when 0), the rest from the ingest users (no socket, no feed
    to refresh: the load every other user puts on the stack)."""
    sent: list[tuple[int, float, int]] = []
    background: list[int] = []
    errors: dict[str, int] = {}
    post_lat: list[float] = []
    inflight: set[asyncio.Task] = set()
    limit = asyncio.Semaphore(64)
    uids = users.sockets

    warm: list[int] = []

    async def one(
        uid: int, event: dict, measured: bool = True, warming: bool = False
    ) -> None:
        async with limit:
            body = json.dumps(event).encode()
            t = time.time()
            try:
                status, data = await pool.call(
                    "POST", "/v1/events", auth_header(users, uid),
                    body,
                )  # fmt: skip
            except NET_ERRORS as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            if status != 202:
                errors[f"http_{status}"] = errors.get(f"http_{status}", 0) + 1
                return
            post_lat.append(1e3 * (time.time() - t))
            event_id = json.loads(data)["events"][0]["id"]
            accepted[event_id] = t
            if warming:
                warm.append(event_id)
            elif measured:
                sent.append((uid, t, event_id))
            else:
                background.append(event_id)

    visible: list[float] = []
    not_visible = 0

    async def sample(uid: int) -> None:
        """GET the list, click its top item, poll the list until it is gone."""
        nonlocal not_visible
        headers = {"Authorization": f"Api-Key {users.keys[uid]}"}
        path = f"/v1/recommendations/user/{uid}?n=10&explain=false"
        try:
            status, data = await pool.call("GET", path, headers)
            items = json.loads(data).get("items") or []
            if status != 200 or not items:
                errors["sample_get"] = errors.get("sample_get", 0) + 1
                return
            top = items[0]["id"]
            event = {"kind": "click", "movie_id": top,
                     "idempotency_key": uuid.uuid4().hex}  # fmt: skip
            t = time.time()
            status, data = await pool.call(
                "POST", "/v1/events", headers, json.dumps(event).encode()
            )
            if status != 202:
                errors[f"http_{status}"] = errors.get(f"http_{status}", 0) + 1
                return
            event_id = json.loads(data)["events"][0]["id"]
            accepted[event_id] = t
            sent.append((uid, t, event_id))
            while time.time() - t < 10:
                status, data = await pool.call("GET", path, headers)
                ids = [i["id"] for i in json.loads(data).get("items") or []]
                if status == 200 and top not in ids:
                    visible.append(1e3 * (time.time() - t))
                    return
                await asyncio.sleep(0.05)
            not_visible += 1
        except NET_ERRORS as exc:
            errors[f"sample_{type(exc).__name__}"] = 1 + errors.get(
                f"sample_{type(exc).__name__}", 0
            )

    queues: list[dict] = []
    sampling = True

    async def sampler() -> None:
        while sampling:
            b = await asyncio.to_thread(probe.backlog)
            if b and "error" not in b:
                queues.append(b)
            await asyncio.sleep(0.25)

    def spawn(coro: Any) -> None:
        task = asyncio.create_task(coro)
        inflight.add(task)
        task.add_done_callback(inflight.discard)

    # which of the events come from a socket user: evenly spread
    share = min(1.0, socket_rate * len(uids) / rate) if socket_rate > 0 else 1.0
    if warmup > 0:  # the same mix, not measured: the steady state is measured
        log(f"  live feed: {warmup:.0f}s of warm-up at {rate:.0f}/s (not measured)")
        w0 = time.time()
        for i in range(int(rate * warmup)):
            delay = w0 + i / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            socket_user = int((i + 1) * share) != int(i * share)
            some = uids if socket_user else users.ingest
            uid = some[i % len(some)]
            spawn(one(uid, make_event(rng, users.movies, True), warming=True))
    measuring()
    sampler_task = asyncio.create_task(sampler())
    start = time.time()
    total = min(max_events, int(rate * duration))
    sample_every = max(1, total // max(1, samples)) if samples else 0
    last_log = start
    measured_total = int(total * share)
    if samples:
        sample_every = max(1, measured_total // samples)
    measured = 0
    for i in range(total):
        due = start + i / rate
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if int((i + 1) * share) == int(i * share):  # a user without a socket
            uid = users.ingest[i % len(users.ingest)]
            spawn(one(uid, make_event(rng, users.movies, True), measured=False))
            continue
        uid = uids[measured % len(uids)]
        measured += 1
        if sample_every and measured % sample_every == sample_every // 2:
            spawn(sample(uid))
        else:
            spawn(one(uid, make_event(rng, users.movies, True)))
        if time.time() - last_log >= 5:
            last_log = time.time()
            lat, missing, _ = delivery(list(sent), sockets)
            log(
                f"  live feed: {len(sent)} posted, {len(lat)} delivered so far, "
                f"p50 {pct(lat, 50)} ms"
            )
    send_secs = time.time() - start
    if inflight:
        await asyncio.gather(*inflight, return_exceptions=True)
    log(f"  live feed: sent {len(sent)} in {send_secs:.1f}s; waiting up to {wait}s")
    deadline = time.time() + wait
    while time.time() < deadline:
        lat, missing, _ = delivery(sent, sockets)
        if not missing:
            break
        await asyncio.sleep(0.25)
    lat, missing, covered = delivery(sent, sockets)
    sampling = False
    await sampler_task

    def queue_stats(key: str) -> dict:
        values = [float(q[key] or 0) for q in queues]
        return {
            "max": max(values, default=None),
            "mean": round(statistics.fmean(values), 1) if values else None,
        }

    # where the time goes: POST sent -> row committed -> applied -> pushed
    ids = [e for _u, _t, e in sent]
    rows = await asyncio.to_thread(
        probe.sql,
        "SELECT i.id, extract(epoch from i.created_at), "
        "extract(epoch from a.applied_at) FROM learning_interaction i "
        "LEFT JOIN learning_appliedevent a ON a.event_id = i.id "
        "WHERE i.id = ANY(%s)",
        (ids,),
    )
    sent_at = {e: t for _u, t, e in sent}
    user_of = {e: u for u, _t, e in sent}
    to_row, to_applied, to_push, to_computed, computed_to_recv = [], [], [], [], []
    timeline = []  # per event: sent (s into the phase), then each leg (ms)
    for event_id, created, applied in rows:
        to_row.append(1e3 * (float(created) - sent_at[event_id]))
        legs = [round(sent_at[event_id] - start, 3), round(to_row[-1], 1)]
        if applied is not None:
            to_applied.append(1e3 * (float(applied) - float(created)))
            legs.append(round(to_applied[-1], 1))
            if event_id in covered:
                to_push.append(1e3 * (covered[event_id] - float(applied)))
                legs.append(round(to_push[-1], 1))
                # the covering update: when the refresh computed it (server)
                sock = sockets[user_of[event_id]]
                cause = next(
                    (c for r, c in sock.updates if r == covered[event_id]), None
                )
                if cause in sock.computed:
                    to_computed.append(1e3 * (sock.computed[cause] - float(applied)))
                    computed_to_recv.append(
                        1e3 * (covered[event_id] - sock.computed[cause])
                    )
        timeline.append(legs)
    updates = sum(
        1 for s in sockets.values() for r, _c in s.updates if start <= r <= deadline
    )
    undelivered = [
        (uid, round(t - start, 2), e) for uid, t, e in sent if e not in covered
    ]
    last_update = {
        uid: max(((r - start, c) for r, c in s.updates if c is not None), default=None)
        for uid, s in sockets.items()
    }
    return {
        "sockets": len(uids),
        "rate_target": rate,
        "socket_rate": socket_rate or rate / len(uids),
        "warmup_s": warmup,
        "warmup_events": len(warm),
        "background_events_posted": len(background),
        "events_posted": len(sent),
        "undelivered_first": undelivered[:60],
        "last_update_per_socket": last_update,
        "send_seconds": round(send_secs, 1),
        "rate_achieved": (
            round((len(sent) + len(background)) / send_secs, 1) if send_secs else None
        ),
        "post_latency_ms": dist(post_lat),
        "delivered": len(lat),
        "delivered_fraction": round(len(lat) / len(sent), 4) if sent else None,
        "latency_ms": dist(lat),
        "feed_updates_received": updates,
        "events_per_update": round(len(sent) / updates, 2) if updates else None,
        "split_ms": {
            "post_sent_to_row_created": dist(to_row),
            "row_created_to_applied": dist(to_applied),
            "applied_to_feed_update_received": dist(to_push),
            "applied_to_feed_computed": dist(to_computed),
            "feed_computed_to_received": dist(computed_to_recv),
            "per_event": sorted(timeline),
        },
        "queues_sampled_every_250ms": {
            k: queue_stats(k)
            for k in ("pending", "lag", "default_queue", "learning_queue")
        },
        "recommendations_reflect_ms": dist(visible),
        "recommendations_not_reflected_in_10s": not_visible,
        "errors": errors,
        "socket_drops": sum(len(s.drops) for s in sockets.values()),
    }


async def push_path(
    sockets: dict[int, Socket], app: Any, with_task: bool = True
) -> dict:
    """The last legs alone, on a quiet stack: a ``group_send`` from here
    (channel layer -> uvicorn -> socket), and a ``recommendations.feed_refresh``
    task sent from here (queue -> default worker -> channel layer -> socket)."""
    from channels.layers import get_channel_layer

    from recommendations.services import feed_group_name

    layer = get_channel_layer()
    direct: list[float] = []
    by_task: list[float] = []
    errors: list[str] = []
    for uid, sock in sockets.items():
        t = time.time()
        message = {"type": "feed.update", "payload": {"probe": t}}
        for _attempt in range(2):  # a pooled connection may predate a restart
            try:
                await layer.group_send(feed_group_name(uid), message)
                break
            except Exception as exc:  # noqa: BLE001 - counted
                errors.append(f"{type(exc).__name__}: {exc}"[:120])
        while time.time() - t < 5 and not any(p == t for _r, p in sock.probes):
            await asyncio.sleep(0.005)
        direct += [1e3 * (r - t) for r, p in sock.probes if p == t]
    for uid, sock in sockets.items() if with_task else ():
        t = time.time()
        await asyncio.to_thread(
            app.send_task, "recommendations.feed_refresh", args=[uid, None],
            queue="default",
        )  # fmt: skip
        got = None
        while time.time() - t < 10 and got is None:
            got = next((r for r, _c in sock.updates if r >= t), None)
            await asyncio.sleep(0.005)
        if got is not None:
            by_task.append(1e3 * (got - t))
    return {
        "sockets": len(sockets),
        "group_send_to_socket_ms": dist(direct),
        "group_send_errors": errors[:5],
        "feed_refresh_task_to_socket_ms": dist(by_task),
    }


# ================================================================ phase 3
async def faults(
    pool: Pool, users: Users, stack: Stack, probe: Probe, sockets: dict[int, Socket],
    args: argparse.Namespace, rng: random.Random, accepted: dict[int, float],
) -> dict:  # fmt: skip
    from apex_site.celery import app

    duration, rate = args.fault_seconds, args.fault_rate
    total = min(args.fault_events, int(rate * duration))
    results: list[dict] = []  # one per request
    limit = asyncio.Semaphore(64)
    inflight: set[asyncio.Task] = set()
    fault_log: dict[str, dict[str, Any]] = {}
    timeline: list[dict] = []
    stop_monitor = asyncio.Event()

    async def one(uid: int, event: dict) -> None:
        async with limit:
            record = {"user": uid, "event": event, "t": time.time()}
            try:
                status, data = await pool.call(
                    "POST", "/v1/events", auth_header(users, uid),
                    json.dumps(event).encode(), timeout=10,
                )  # fmt: skip
            except NET_ERRORS as exc:
                record["error"] = type(exc).__name__
                record["done"] = time.time()
                results.append(record)
                return
            record["status"] = status
            record["done"] = time.time()
            if status == 202:
                record["id"] = json.loads(data)["events"][0]["id"]
                accepted[record["id"]] = record["t"]
            results.append(record)

    def accepted_before(t: float) -> list[int]:
        return [r["id"] for r in list(results) if "id" in r and r["done"] <= t]

    async def monitor() -> None:
        """Every 0.5 s: the stream backlog; per fault, whether every event
        accepted before it is applied (its recovery)."""
        last_log = time.time()
        while not stop_monitor.is_set():
            now = time.time()
            backlog = await asyncio.to_thread(probe.backlog)
            accepted_ids = [r["id"] for r in list(results) if "id" in r]
            applied = await asyncio.to_thread(probe.applied_count, accepted_ids)
            timeline.append(
                {"t": round(now - start, 1), "accepted": len(accepted_ids),
                 "applied": applied, "stream": backlog}
            )  # fmt: skip
            for name, f in list(fault_log.items()):  # faults start meanwhile
                if "recovered_s" in f or "ids_before" not in f:
                    continue
                n = await asyncio.to_thread(probe.applied_count, f["ids_before"])
                f["applied_before_ids"] = n
                if n >= len(f["ids_before"]):
                    f["recovered_s"] = round(time.time() - f["at"], 1)
                    log(f"  fault {name}: recovered after {f['recovered_s']} s")
            if now - last_log >= 5:
                last_log = now
                errs = sum(1 for r in list(results) if r.get("status") != 202)
                log(
                    f"  faults t={now - start:.0f}s: {len(accepted_ids)} accepted, "
                    f"{applied} applied, {errs} not 202; stream {backlog}"
                )
            await asyncio.sleep(0.5)

    async def kill_learner() -> None:
        r = probe.redis()
        pending = 0
        deadline = time.time() + 5
        while time.time() < deadline:  # mid-batch: delivered, not acknowledged
            with contextlib.suppress(Exception):
                pending = (await asyncio.to_thread(r.xpending, STREAM, GROUP))[
                    "pending"
                ]
            if pending:
                break
            await asyncio.sleep(0.01)
        at = time.time()
        await asyncio.to_thread(stack.kill_group, "worker-learning")
        f = {"at": at, "t": round(at - start, 1), "pending_at_kill": pending,
             "ids_before": accepted_before(at)}  # fmt: skip
        fault_log["learning_worker_kill9"] = f
        log(f"  FAULT kill -9 learning worker (pending {pending}); restarting it")
        stack.start_worker("learning", args.worker_concurrency)
        stack.restarts["worker-learning"] = stack.restarts.get("worker-learning", 0) + 1
        ok = await asyncio.to_thread(ping, app, "learner", 60)
        f["worker_answers_ping_s"] = round(time.time() - at, 1) if ok else None

    async def restart_redis() -> None:
        at = time.time()
        f = {"at": at, "t": round(at - start, 1), "ids_before": accepted_before(at)}
        fault_log["redis_restart"] = f
        log(f"  FAULT Redis stop, {args.redis_down}s down, start on the same port")
        await asyncio.to_thread(stack.restart_redis, args.redis_down)
        f["redis_back_s"] = round(time.time() - at, 1)
        log("  Redis is back; sending learning.republish_events now and every 10 s")
        f["republish"] = []
        asyncio.create_task(republish_loop(f))

    async def republish_loop(f: dict) -> None:
        """What beat does every 60 s, sooner: send the task (no result wait:
        the bench's own result consumer does not survive a Redis restart)
        and note the outbox watermark."""
        while not stop_monitor.is_set():
            res: dict[str, Any] = {}
            try:
                await asyncio.to_thread(
                    app.send_task, "learning.republish_events", queue="learning"
                )
            except Exception as exc:  # noqa: BLE001 - report, retry
                res["error"] = f"{type(exc).__name__}: {exc}"[:200]
            with contextlib.suppress(Exception):
                res["watermark_before"] = (await asyncio.to_thread(
                    probe.sql, "SELECT last_event_id FROM learning_exportwatermark "
                    "WHERE name = 'stream-outbox'",
                ) or [[None]])[0][0]  # fmt: skip
            f["republish"].append({"t": round(time.time() - start, 1), **res})
            for _ in range(20):
                if stop_monitor.is_set():
                    return
                await asyncio.sleep(0.5)

    async def kill_uvicorn_worker() -> None:
        workers = stack.uvicorn_workers()
        at = time.time()
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        f = {"at": at, "t": round(at - start, 1), "pid": victim,
             "ids_before": accepted_before(at)}  # fmt: skip
        fault_log["uvicorn_worker_kill9"] = f
        log(f"  FAULT kill -9 uvicorn worker {victim}")
        while time.time() - at < 60:
            now = stack.uvicorn_workers()
            if len(now) >= len(workers) and victim not in now:
                f["replaced_after_s"] = round(time.time() - at, 1)
                break
            await asyncio.sleep(0.1)

    start = time.time()
    plan = [
        (args.fault_at[0] * duration, kill_learner),
        (args.fault_at[1] * duration, restart_redis),
        (args.fault_at[2] * duration, kill_uvicorn_worker),
    ]
    monitor_task = asyncio.create_task(monitor())
    fault_tasks = []
    socket_share = 0.1
    for i in range(total):
        now = time.time()
        while plan and now - start >= plan[0][0]:
            fault_tasks.append(asyncio.create_task(plan.pop(0)[1]()))
        delay = start + i / rate - now
        if delay > 0:
            await asyncio.sleep(delay)
        pool_users = users.sockets if rng.random() < socket_share else users.faults
        uid = rng.choice(pool_users)
        task = asyncio.create_task(one(uid, make_event(rng, users.movies)))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
    for _t, fn in plan:  # bounded count reached before a fault's time
        fault_tasks.append(asyncio.create_task(fn()))
    send_secs = time.time() - start
    await asyncio.gather(*inflight, return_exceptions=True)
    await asyncio.gather(*fault_tasks, return_exceptions=True)
    load_end = time.time()
    log(f"  faults: {len(results)} requests in {send_secs:.1f}s; retrying failures")

    # a client retries what got no 202, with the same idempotency keys
    failed = [r for r in results if r.get("status") != 202]
    retried = {"requests": len(failed), "created": 0, "already_recorded": 0,
               "still_failing": 0}  # fmt: skip
    for r in failed:
        for _attempt in range(5):
            try:
                status, data = await pool.call(
                    "POST", "/v1/events",
                    {"Authorization": f"Api-Key {users.keys[r['user']]}"},
                    json.dumps(r["event"]).encode(), timeout=10,
                )  # fmt: skip
            except NET_ERRORS:
                await asyncio.sleep(0.5)
                continue
            if status == 202:
                e = json.loads(data)["events"][0]
                r["retry_id"] = e["id"]
                accepted[e["id"]] = time.time()
                retried["created" if e["created"] else "already_recorded"] += 1
                if not e["created"]:
                    why = str(r.get("status", r.get("error")))
                    kinds = retried.setdefault("already_recorded_first_answer", {})
                    kinds[why] = kinds.get(why, 0) + 1
                break
            await asyncio.sleep(0.5)
        else:
            retried["still_failing"] += 1

    # wait for every accepted event of the phase to be applied
    log("  faults: waiting for the backlog to drain")
    all_ids = [r["id"] for r in results if "id" in r] + [
        r["retry_id"] for r in results if "retry_id" in r
    ]
    wait = await wait_applied(probe, all_ids, args.drain_wait_faults, "fault drain")
    for f in fault_log.values():  # recoveries still open at the load's end
        if "recovered_s" not in f:
            n = await asyncio.to_thread(probe.applied_count, f["ids_before"])
            f["applied_before_ids"] = n
            if n >= len(f["ids_before"]):
                f["recovered_s_upper_bound"] = round(time.time() - f["at"], 1)
    stop_monitor.set()
    await monitor_task

    statuses: dict[str, int] = {}
    for r in results:
        key = str(r.get("status", r.get("error")))
        statuses[key] = statuses.get(key, 0) + 1
    ordered = sorted(fault_log.values(), key=lambda f: f["t"])
    for i, f in enumerate(ordered):
        f["events_accepted_before"] = len(f.pop("ids_before", []))
        f.pop("at", None)
        # requests sent from this fault until the next one that got no 202
        until = ordered[i + 1]["t"] if i + 1 < len(ordered) else 1e9
        # by the time the answer came (a request in flight when Redis stops
        # fails at the stop)
        bad = [
            r["done"] - start for r in results
            if r.get("status") != 202 and f["t"] <= r["done"] - start < until
        ]  # fmt: skip
        f["not_202_until_next_fault"] = len(bad)
        f["not_202_span_s"] = round(max(bad) - min(bad), 2) if bad else 0.0
        # the client side of recovery: the last request that got no 202
        f["last_not_202_after_s"] = round(max(bad) - f["t"], 2) if bad else None
        kinds: dict[str, int] = {}
        for r in results:
            if r.get("status") != 202 and f["t"] <= r["done"] - start < until:
                key = str(r.get("status", r.get("error")))
                kinds[key] = kinds.get(key, 0) + 1
        f["not_202_kinds"] = kinds
    # live feed across the faults: did the sockets hear of events after each?
    socket_events = [
        (r["user"], r["t"], r["id"]) for r in results
        if "id" in r and r["user"] in sockets and r["event"]["kind"] != "watchlist"
    ]  # fmt: skip
    lat, _missing, _ = delivery(socket_events, sockets)
    redis_t = start + fault_log.get("redis_restart", {}).get("t", 1e9)
    after_redis = [s for s in socket_events if s[1] > redis_t + args.redis_down + 1]
    lat_after, _m, _c = delivery(after_redis, sockets)
    return {
        "seconds_sending": round(send_secs, 1),
        "requests": len(results),
        "rate_target": rate,
        "statuses": statuses,
        "accepted_first_try": sum(1 for r in results if "id" in r),
        "retry_of_non_202": retried,
        "faults": fault_log,
        "drain_after_load": wait,
        "seconds_from_load_end_to_drained": round(time.time() - load_end, 1),
        "socket_users_positive_events": len(socket_events),
        "socket_delivered_fraction": round(len(lat) / len(socket_events), 3)
        if socket_events
        else None,  # fmt: skip
        "socket_events_after_redis_restart": len(after_redis),
        "socket_delivered_after_redis_restart": len(lat_after),
        "socket_drops": {s.user_id: len(s.drops) for s in sockets.values() if s.drops},
        "socket_errors_sample": [e for s in sockets.values() for e in s.errors][:5],
        "timeline": timeline[:: max(1, len(timeline) // 60)],
    }


def ping(app: Any, node: str, timeout: float) -> bool:
    deadline = time.time() + timeout
    host = socket.gethostname()
    while time.time() < deadline:
        with contextlib.suppress(Exception):
            if app.control.ping(destination=[f"{node}@{host}"], timeout=1):
                return True
        time.sleep(0.5)
    return False


# ================================================================ task logs
_RECEIVED = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \S+ "
    r"Task (\S+)\[([0-9a-f-]+)\] received"
)
_SUCCEEDED = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \S+ Task (\S+)\[([0-9a-f-]+)\] "
    r"succeeded in ([0-9.e-]+)s: (.*)$"
)


def _log_time(stamp: str) -> float:
    day, ms = stamp.split(",")
    return time.mktime(time.strptime(day, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1e3


def task_timings(paths: list[Path], windows: dict[str, tuple[float, float]]) -> dict:
    """Per phase window and task name: how long tasks waited in the worker
    (received -> started) and ran, from the workers' INFO lines; for
    ``learning.drain_events`` also the events applied per second of drain."""
    received: dict[str, float] = {}
    done: list[tuple[str, float, float, float | None, str]] = []
    for path in paths:
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                if m := _RECEIVED.match(line):
                    received[m.group(3)] = _log_time(m.group(1))
                elif m := _SUCCEEDED.match(line):
                    end, run = _log_time(m.group(1)), float(m.group(4))
                    got = received.get(m.group(3))
                    wait = end - run - got if got is not None else None
                    done.append((m.group(2), end, run, wait, m.group(5)))
    out: dict[str, Any] = {}
    for phase, (t0, t1) in windows.items():
        names: dict[str, Any] = {}
        for name in sorted({d[0] for d in done}):
            rows = [d for d in done if d[0] == name and t0 <= d[1] <= t1]
            if not rows:
                continue
            entry = {
                "tasks": len(rows),
                "run_ms": dist([1e3 * r[2] for r in rows]),
                "wait_in_worker_ms": dist(
                    [1e3 * r[3] for r in rows if r[3] is not None]
                ),
                "busy_s": round(sum(r[2] for r in rows), 1),
            }
            if name == "learning.drain_events":
                applied = batches = 0
                for r in rows:
                    with contextlib.suppress(Exception):
                        value = ast.literal_eval(r[4])
                        applied += value["applied"]
                        batches += value["batches"]
                entry["applied"] = applied
                entry["batches"] = batches
                entry["applied_per_busy_s"] = (
                    round(applied / entry["busy_s"], 1) if entry["busy_s"] else None
                )
            names[name] = entry
        out[phase] = names
    return out


# ================================================================ integrity
def integrity(probe: Probe, accepted: dict[int, float]) -> dict:
    ids = list(accepted)
    in_log = probe.sql(
        "SELECT count(*) FROM learning_interaction WHERE id = ANY(%s)", (ids,)
    )[0][0]
    applied = probe.applied_count(ids)
    live = probe.sql(
        "SELECT count(*), count(a.event_id) FROM learning_interaction i "
        "LEFT JOIN learning_appliedevent a ON a.event_id = i.id "
        "WHERE i.source NOT LIKE 'movielens%%'"
    )[0]
    # applied twice would count twice in the profile / item counters
    profiles = probe.sql(
        "SELECT coalesce(sum(greatest(p.events_applied - c.n, 0)), 0), "
        "coalesce(sum(greatest(c.n - p.events_applied, 0)), 0) FROM "
        "learning_userprofile p JOIN (SELECT i.user_id, count(*) AS n FROM "
        "learning_appliedevent a JOIN learning_interaction i ON i.id = a.event_id "
        "GROUP BY i.user_id) c ON c.user_id = p.user_id"
    )[0]
    items = probe.sql(
        "SELECT coalesce(sum(greatest(t.events - c.n, 0)), 0), "
        "coalesce(sum(greatest(c.n - t.events, 0)), 0) FROM learning_itemactivity t "
        "JOIN (SELECT i.movie_id, count(*) AS n FROM learning_appliedevent a "
        "JOIN learning_interaction i ON i.id = a.event_id WHERE i.kind IN "
        "('rating', 'watch', 'click') GROUP BY i.movie_id) c ON c.movie_id = t.movie_id"
    )[0]
    dead = probe.sql("SELECT count(*) FROM learning_deadletter")[0][0]
    unapplied = probe.sql(
        "SELECT i.source, count(*), min(i.id), max(i.id) FROM learning_interaction i "
        "LEFT JOIN learning_appliedevent a ON a.event_id = i.id "
        "WHERE i.source NOT LIKE 'movielens%%' AND a.event_id IS NULL "
        "GROUP BY i.source"
    )
    # rows whose created_at is newer than that of a row with a higher id: the
    # outbox (cutoff on created_at, watermark on id) can step over them
    inversions = probe.sql(
        "SELECT count(*), coalesce(max(extract(epoch FROM created_at - later_min)), 0)"
        " FROM (SELECT created_at, min(created_at) OVER (ORDER BY id DESC ROWS "
        "BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS later_min "
        "FROM learning_interaction WHERE source = 'api') x "
        "WHERE created_at > later_min"
    )[0]
    neighbours = []
    for _source, _n, low, _high in unapplied[:3]:
        neighbours += [
            [int(i), round(float(c), 3), a is not None]
            for i, c, a in probe.sql(
                "SELECT i.id, extract(epoch FROM i.created_at), a.event_id "
                "FROM learning_interaction i LEFT JOIN learning_appliedevent a "
                "ON a.event_id = i.id WHERE i.id BETWEEN %s AND %s ORDER BY i.id",
                (low - 3, low + 10),
            )
        ]
    applied_by_source = probe.sql(
        "SELECT i.source, count(*) FROM learning_appliedevent a "
        "JOIN learning_interaction i ON i.id = a.event_id GROUP BY i.source"
    )
    watermark = probe.sql(
        "SELECT last_event_id FROM learning_exportwatermark "
        "WHERE name = 'stream-outbox'"
    )
    stray = probe.sql(
        "SELECT count(*) FROM learning_appliedevent a LEFT JOIN learning_interaction "
        "i ON i.id = a.event_id WHERE i.id IS NULL"
    )[0][0]
    return {
        "accepted_ids": len(ids),
        "missing_from_interaction_log": len(ids) - in_log,
        "not_applied": len(ids) - applied,
        "live_rows_in_log": live[0],
        "live_rows_not_applied": live[0] - live[1],
        "live_rows_not_applied_by_source": [list(r) for r in unapplied],
        "outbox_watermark": watermark[0][0] if watermark else None,
        "applied_by_source": dict(applied_by_source),
        "api_rows_created_after_a_higher_id": int(inversions[0]),
        "api_rows_created_after_a_higher_id_max_ms": round(
            1e3 * float(inversions[1]), 1
        ),
        "unapplied_neighbourhood_id_created_applied": neighbours,
        "user_profile_over_counted": int(profiles[0]),
        "user_profile_under_counted": int(profiles[1]),
        "item_activity_over_counted": int(items[0]),
        "item_activity_under_counted": int(items[1]),
        "dead_letters": dead,
        "applied_without_a_row": stray,
    }


# ================================================================ profile
def profile_in_process(users: Users, requests: int) -> dict:
    """``POST /v1/events`` through the whole Django stack in this process
    (test client), without and with cProfile: where a request's time goes."""
    from django.db import connections
    from django.test import Client

    client = Client(SERVER_NAME="127.0.0.1")
    rng = random.Random(7)
    uid = users.faults[0]
    auth = f"Api-Key {users.keys[uid]}"

    def one() -> None:
        body = json.dumps(make_event(rng, users.movies))
        response = client.post(
            "/v1/events", body, content_type="application/json",
            HTTP_AUTHORIZATION=auth,
        )  # fmt: skip
        assert response.status_code == 202, response.content[:300]

    for _ in range(30):
        one()
    walls_post = []
    for _ in range(requests):
        t = time.perf_counter()
        one()
        walls_post.append(1e3 * (time.perf_counter() - t))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        one()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(20)

    # the default worker's task: one feed refresh (database fallback feed)
    from learning.models import Interaction
    from recommendations import services as rec_services

    event_id = (
        Interaction.objects.filter(user_id=uid)
        .order_by("-id")
        .values_list("id", flat=True)[0]
    )
    refresh = []
    for _ in range(max(10, requests // 10)):
        t = time.perf_counter()
        rec_services.feed_refresh(user_id=uid, event_id=event_id)
        refresh.append(1e3 * (time.perf_counter() - t))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(max(10, requests // 10)):
        rec_services.feed_refresh(user_id=uid, event_id=event_id)
    profiler.disable()
    out.write("\n==== feed_refresh ====\n")
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)

    # the coordinator: one micro-batch (``_apply``) of 100 new events, spread
    # over 100 users (single-event ingest) or all of one user (a batch POST)
    from django.utils import timezone

    from learning import coordinator

    def new_rows(user_ids: list[int], n: int) -> list[int]:
        now = timezone.now()
        rows = []
        for _ in range(n):
            event = make_event(rng, users.movies, positive=True)
            rows.append(
                Interaction(
                    user_id=rng.choice(user_ids), movie_id=event["movie_id"],
                    kind=event["kind"], value=event.get("value"), occurred_at=now,
                    source="bench-profile",
                    idempotency_key=f"bench-profile:{uuid.uuid4().hex}",
                )
            )  # fmt: skip
        return [row.pk for row in Interaction.objects.bulk_create(rows)]

    apply_ms: dict[str, Any] = {}
    for label, user_ids in (
        ("100_events_100_users", users.faults[:100]),
        ("100_events_1_user", users.batch[:1]),
    ):
        walls = []
        for _ in range(5):
            ids = new_rows(user_ids, 100)
            t = time.perf_counter()
            coordinator._apply(ids)
            walls.append(1e3 * (time.perf_counter() - t))
        apply_ms[label] = dist(walls)
    profiler = cProfile.Profile()
    for _ in range(3):
        ids = new_rows(users.faults[:100], 100)
        profiler.enable()
        coordinator._apply(ids)
        profiler.disable()
    out.write("\n==== coordinator._apply, 100 events of 100 users ====\n")
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    connections.close_all()
    return {
        "requests": requests,
        "wall_ms": dist(walls_post),
        "feed_refresh_ms": dist(refresh),
        "coordinator_apply_ms": apply_ms,
        "profile": out.getvalue(),
    }


# ================================================================ main
async def ingest_phase(
    args: argparse.Namespace, stack: Stack, users: Users, probe: Probe,
    result: dict, pool: Pool, rng: random.Random, accepted: dict[int, float],
    purge: Callable[[], int],
) -> None:  # fmt: skip
    """Phase 1: single-event and batched POSTs, then the coordinator's drain."""
    phase: dict[str, Any] = {"single": []}
    result["ingest"] = phase
    windows = result["windows"]
    for c in args.single_concurrency:
        cpu0, t0, l0 = stack.cpu(), time.time(), os.getloadavg()
        log(f"phase 1: single-event POSTs, concurrency {c}, {args.duration}s")
        spy = args.py_spy and args.py_spy_phase == "ingest"
        spies = (
            stack.py_spy(args.py_spy, args.out, args.warmup + args.duration)
            if spy and c == max(args.single_concurrency)
            else []
        )
        level = await ingest_single(
            pool, users, c, args.duration, args.warmup, rng, accepted
        )
        if spies:
            level["py_spy"] = await asyncio.to_thread(py_spy_summary, spies)
        level["cores_used"] = cpu_share(cpu0, stack.cpu(), time.time() - t0)
        level["loadavg_before_after"] = [l0, os.getloadavg()]
        windows[f"ingest_single_c{c}"] = (t0, time.time())
        phase["single"].append(level)
        log(
            f"  -> {json.dumps({k: level[k] for k in ('req_per_s', 'latency_ms', 'errors')})}"  # noqa: E501
        )
        log(f"  cores used: {level['cores_used']}")
    if args.batch_size > 0:  # 0: no batches
        cpu0, t0, l0 = stack.cpu(), time.time(), os.getloadavg()
        log(f"phase 1: batches of {args.batch_size}, concurrency 4, {args.duration}s")
        level = await ingest_batch(
            pool, users, 4, args.duration, args.batch_size, rng, accepted
        )
        level["cores_used"] = cpu_share(cpu0, stack.cpu(), time.time() - t0)
        level["loadavg_before_after"] = [l0, os.getloadavg()]
        windows["ingest_batch"] = (t0, time.time())
        phase["batch"] = level
        log(
            f"  -> {json.dumps({k: level[k] for k in ('events_per_s', 'latency_ms', 'errors')})}"  # noqa: E501
        )
        log(f"  cores used: {level['cores_used']}")

    log(f"phase 1: waiting for the coordinator to apply {len(accepted)} events")
    cpu0, t0 = stack.cpu(), time.time()
    backlog0 = await asyncio.to_thread(probe.backlog) or {}
    drain = await wait_applied(
        probe, list(accepted), args.drain_wait, "ingest drain", stream_empty=True
    )
    drain["stream_when_load_ended"] = backlog0
    drain["cores_used"] = cpu_share(cpu0, stack.cpu(), time.time() - t0)
    windows["ingest_drain"] = (t0, time.time())
    drain["stream_after"] = await asyncio.to_thread(probe.backlog)
    # the feed refreshes the ingest queued that the default worker has not
    # done yet: dropped, so the live-feed phase starts with an empty queue
    drain["purged_default_queue"] = await asyncio.to_thread(purge)
    phase["drain"] = drain
    log(f"  drain: {json.dumps({k: v for k, v in drain.items() if k != 'cores_used'})}")


async def run_phases(
    args: argparse.Namespace, stack: Stack, users: Users, probe: Probe, result: dict
) -> dict[int, float]:
    rng = random.Random(args.seed)
    pool = Pool(stack.http_port)
    accepted: dict[int, float] = {}  # every 202'd event id -> when it was sent

    # warm both uvicorn workers (the kernel picks the worker per connection)
    for _ in range(40):
        uid = users.ingest[0]
        conn = Connection(stack.http_port)
        with contextlib.suppress(*NET_ERRORS):
            await conn.request(
                "POST", "/v1/events", {"Authorization": f"Api-Key {users.keys[uid]}"},
                json.dumps(make_event(rng, users.movies)).encode(),
            )  # fmt: skip
        await conn.close()

    # ---------------------------------------------------- 1. ingest
    windows: dict[str, tuple[float, float]] = {}
    result["windows"] = windows
    from apex_site.celery import app

    def purge() -> int:
        with app.connection_for_write() as conn:
            return conn.default_channel.queue_purge("default") or 0

    if "ingest" in args.phases:
        await ingest_phase(
            args, stack, users, probe, result, pool, rng, accepted, purge
        )

    # ---------------------------------------------------- 2. live feed
    sockets = {uid: Socket(uid) for uid in users.sockets}
    stop = asyncio.Event()
    joins = {uid: asyncio.Event() for uid in users.sockets}
    holders = [
        asyncio.create_task(hold_socket(
            sockets[uid], stack.http_port,
            f"{users.cookie_name}={users.cookies[uid]}", stop, joins[uid],
        ))
        for uid in users.sockets
    ]  # fmt: skip
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in joins.values())), 30)
    except TimeoutError:
        log(f"  only {sum(e.is_set() for e in joins.values())} sockets joined")
    log(
        f"phase 2: {len(sockets)} websockets open; {args.rate} events/s for "
        f"{args.live_seconds}s (at most {args.live_events})"
    )
    if "live" in args.phases:
        mark: dict[str, Any] = {}

        def measuring() -> None:  # after the warm-up: CPU, load, profiles
            mark.update(cpu=stack.cpu(), t=time.time(), load=os.getloadavg())
            mark["spies"] = (
                stack.py_spy(args.py_spy, args.out, args.live_seconds)
                if args.py_spy and args.py_spy_phase == "live"
                else []
            )

        live = await live_feed(
            pool, users, sockets, args.rate, args.live_seconds, args.live_events,
            args.live_wait, args.samples, rng, accepted, probe, args.socket_rate,
            args.live_warmup, measuring,
        )  # fmt: skip
        if mark["spies"]:
            live["py_spy"] = await asyncio.to_thread(py_spy_summary, mark["spies"])
        live["cores_used"] = cpu_share(
            mark["cpu"], stack.cpu(), time.time() - mark["t"]
        )
        live["loadavg_before_after"] = [mark["load"], os.getloadavg()]
        windows["live_feed"] = (mark["t"], time.time())
        result["live_feed"] = live
        log(
            f"  -> delivered {live['delivered']}/{live['events_posted']}, latency "
            f"{live['latency_ms']}; split {json.dumps(live['split_ms'])}"
        )
        log(f"  recommendations reflect: {live['recommendations_reflect_ms']}")
        log(f"  cores used: {live['cores_used']}")
        live["push_path_quiet"] = await push_path(sockets, app)
        log(f"  push path on a quiet stack: {live['push_path_quiet']}")
        # the stream carries each live event how many times? (the outbox
        # republishes every event older than its grace, published or not)
        live["stream_vs_log"] = {
            "stream_entries": (await asyncio.to_thread(probe.backlog) or {}).get(
                "length"
            ),
            "live_rows": (
                await asyncio.to_thread(
                    probe.sql,
                    "SELECT count(*) FROM learning_interaction "
                    "WHERE source NOT LIKE 'movielens%%'",
                )
            )[0][0],
        }
        log(f"  stream vs log: {live['stream_vs_log']}")

    # ---------------------------------------------------- 3. faults
    if args.fault_seconds > 0 and "faults" in args.phases:
        b = await asyncio.to_thread(probe.backlog)
        log(
            f"phase 3: faults, {args.fault_rate} events/s for "
            f"{args.fault_seconds}s; stream {b}"
        )
        cpu0, t0, l0 = stack.cpu(), time.time(), os.getloadavg()
        result["faults"] = await faults(
            pool, users, stack, probe, sockets, args, rng, accepted
        )
        result["faults"]["cores_used"] = cpu_share(cpu0, stack.cpu(), time.time() - t0)
        windows["faults"] = (t0, time.time())
        result["faults"]["loadavg_before_after"] = [l0, os.getloadavg()]
        show = {k: v for k, v in result["faults"].items() if k != "timeline"}
        log(f"  -> {json.dumps(show, default=str)[:3000]}")
        # the sockets after the faults (the client reconnects as the page's
        # script does): does a push reach each of them?
        result["faults"]["push_after_faults"] = await push_path(
            sockets, app, with_task=False
        )
        log(f"  push after the faults: {result['faults']['push_after_faults']}")
        b = await asyncio.to_thread(probe.backlog) or {}
        result["faults"]["stream_and_queues_at_end"] = b
        result["faults"]["purged_default_queue"] = await asyncio.to_thread(purge)
        log(f"  at the end: {b}; purged the default queue (feed refreshes)")
    stop.set()
    await asyncio.gather(*holders, return_exceptions=True)
    await pool.close()
    return accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--single-concurrency", default="1,8")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--sockets", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument(
        "--socket-rate",
        type=float,
        default=0.0,
        help="phase 2: events/s per websocket user; the rest of --rate comes "
        "from the ingest users, who have no socket (0: all of --rate from "
        "the websocket users)",
    )
    parser.add_argument(
        "--live-warmup",
        type=float,
        default=5.0,
        help="phase 2: seconds of the same load before the measured part (the "
        "workers' caches and connections warm up; the steady state is measured)",
    )
    parser.add_argument("--live-seconds", type=float, default=20.0)
    parser.add_argument("--live-events", type=int, default=4000)
    parser.add_argument("--live-wait", type=float, default=20.0)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--fault-seconds", type=float, default=60.0)
    parser.add_argument("--fault-rate", type=float, default=170.0)
    parser.add_argument("--fault-events", type=int, default=10_000)
    parser.add_argument(
        "--fault-at",
        default="0.08,0.7,0.85",
        help="learner kill, Redis restart, uvicorn kill (fractions)",
    )
    parser.add_argument("--redis-down", type=float, default=2.0)
    parser.add_argument("--drain-wait", type=float, default=240.0)
    parser.add_argument("--drain-wait-faults", type=float, default=150.0)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument(
        "--uvicorn-workers",
        type=int,
        default=2,
        help="HTTP worker processes (uvicorn's or gunicorn's)",
    )
    parser.add_argument(
        "--web",
        choices=("uvicorn", "production"),
        default="production",
        help="production: nginx + granian (HTTP) + uvicorn (/ws/), as compose "
        "runs it; uvicorn: the single ASGI server (the embedded mode's shape)",
    )
    parser.add_argument(
        "--wsgi-threads",
        type=int,
        default=4,
        help="production shape: granian's threads per WSGI worker",
    )
    parser.add_argument("--profile-requests", type=int, default=300)
    parser.add_argument("--no-beat", action="store_true")
    parser.add_argument(
        "--source",
        choices=("worktree", "head"),
        default="worktree",
        help="the code the servers run: the working tree or the last commit",
    )
    parser.add_argument(
        "--metering",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the billing meter (production's default), every user on the "
        "Business plan; --no-metering: DRF's rate throttle instead",
    )
    parser.add_argument(
        "--worker-log-level",
        default="INFO",
        help="the Celery workers' APEX_LOG_LEVEL (INFO times tasks)",
    )
    parser.add_argument(
        "--phases",
        default="ingest,live,faults",
        help="the phases to run, comma-separated (ingest, live, faults)",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        help="a py-spy binary: sample every server process (holding the GIL: "
        "CPU, not waits) during --py-spy-phase; folded stacks beside --out",
    )
    parser.add_argument(
        "--py-spy-phase",
        choices=("live", "ingest"),
        default="live",
        help="ingest: the single-event POSTs at the highest concurrency",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.users, args.sockets = 3.0, 1.0, 50, 5
        args.rate, args.live_seconds, args.live_wait, args.samples = 50.0, 5.0, 10.0, 3
        args.fault_seconds, args.fault_rate = 15.0, 60.0
        args.drain_wait, args.drain_wait_faults = 60.0, 120.0
        args.profile_requests = 50
    if args.out:
        args.out = args.out.resolve()
    args.single_concurrency = [int(x) for x in str(args.single_concurrency).split(",")]
    args.fault_at = [float(x) for x in str(args.fault_at).split(",")]
    args.phases = {x.strip() for x in str(args.phases).split(",") if x.strip()}
    if unknown := args.phases - {"ingest", "live", "faults"}:
        parser.error(f"unknown phases: {sorted(unknown)}")

    def terminate(signum: int, _frame: Any) -> None:
        raise SystemExit(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    folder = Path(tempfile.mkdtemp(prefix="apex-events-bench-"))
    folder.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    stack = Stack(
        folder,
        beat=not args.no_beat,
        log_level=args.worker_log_level,
        metering=args.metering,
    )
    result: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "nproc": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "args": {
            k: v if not isinstance(v, Path) else str(v) for k, v in vars(args).items()
        },  # fmt: skip
    }
    try:
        result["code"] = stack.snapshot(args.source)
        log(f"code snapshot {result['code']}; PostgreSQL + Redis under {folder}")
        stack.start_databases()
        t = time.time()
        stack.manage("migrate", "--noinput", "-v", "0")
        result["migrate_s"] = round(time.time() - t, 1)
        log(f"migrated in {result['migrate_s']}s; bootstrap (ML-100K + TMDB)")
        t = time.time()
        stack.manage("bootstrap", "--search-index", "skip")
        result["bootstrap_s"] = round(time.time() - t, 1)
        users = prepare_users(args, stack)
        probe = Probe(stack.database_url, stack.redis_url)
        result["catalog"] = {
            "movies": len(users.movies),
            "ratings": probe.sql("SELECT count(*) FROM learning_interaction")[0][0],
        }
        log(
            f"bootstrap {result['bootstrap_s']}s: {result['catalog']}; "
            f"{len(users.keys)} users with API keys, {len(users.cookies)} sessions"
        )
        if args.web == "production":
            stack.manage("collectstatic", "--noinput", "-v", "0")
            stack.start_production_shape(args.uvicorn_workers, args.wsgi_threads)
        else:
            stack.start_uvicorn(args.uvicorn_workers)
        stack.start_worker("learning", args.worker_concurrency)
        stack.start_worker("default", args.worker_concurrency)
        # the online KAN's one learner, as compose runs it (a no-op here:
        # no model artifacts, so nothing to learn; it drains its queue)
        stack.start_worker("online", 1)
        if stack.beat:
            stack.start_beat()
        wait_for_port(stack.http_port, "uvicorn", timeout=90)
        from apex_site.celery import app

        for node in ("learner", "default", "online"):
            if not ping(app, node, 90):
                raise RuntimeError(f"celery worker {node} did not answer")
        log(
            f"stack up: {args.web} :{stack.http_port} x{args.uvicorn_workers} "
            f"(workers {stack.uvicorn_workers()}), celery learning + default"
            f"{' + beat' if stack.beat else ''}"
        )
        accepted = asyncio.run(run_phases(args, stack, users, probe, result))
        log("integrity over every accepted event of the run")
        result["integrity"] = integrity(probe, accepted)
        log(f"  -> {json.dumps(result['integrity'])}")
        result["task_timings"] = task_timings(
            [stack.logs["worker-learning"], stack.logs["worker-default"]],
            result.get("windows", {}),
        )
        for phase_name, names in result["task_timings"].items():
            for name, entry in names.items():
                log(f"  tasks {phase_name} {name}: {json.dumps(entry)}")
        if args.profile_requests:
            log(
                f"in-process profile of POST /v1/events "
                f"({args.profile_requests} requests)"
            )
            try:
                prof = profile_in_process(users, args.profile_requests)
            except Exception as exc:  # noqa: BLE001 - the measurements stand
                prof = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                log(f"  profile failed: {prof['error']}")
            result["profile_in_process"] = prof
            if "wall_ms" in prof:
                log(f"  POST wall per request {prof['wall_ms']}")
                log(f"  feed_refresh wall per call {prof['feed_refresh_ms']}")
                log(f"  coordinator _apply per batch {prof['coordinator_apply_ms']}")
                print(prof["profile"][:7000], flush=True)
        result["server_logs"] = stack.log_problems()
        for name, info in result["server_logs"].items():
            if info["problem_lines"]:
                log(f"  log {name}: {info['problem_lines']} problem lines")
    finally:
        result["loadavg_end"] = os.getloadavg()
        result["elapsed_s"] = round(time.time() - T0, 1)
        log("stopping every process")
        os.chdir(ROOT)
        try:
            stack.close()
        finally:
            if args.keep:
                log(f"kept {folder}")
            else:
                shutil.rmtree(folder, ignore_errors=True)
            if args.out:
                args.out.write_text(json.dumps(result, indent=2, default=str))
                log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
