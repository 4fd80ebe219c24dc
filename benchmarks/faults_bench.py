"""Injected faults under load on the production shape (issue 18).

One command brings up, on 127.0.0.1 only and in a temporary folder, the
stack of ``benchmarks/events_bench.py`` (its ``Stack``: a snapshot of the
code, PostgreSQL and Redis from ``scripts/servers.py``, ``migrate``,
``bootstrap`` of ML-100K without a search index, nginx -> granian WSGI (2
workers x 4 threads, ``--respawn-failed-workers``) + uvicorn for ``/ws/``,
a Celery worker for ``-Q learning`` (the online coordinator, which applies
the event stream), one for ``-Q default`` and beat; production settings,
no artifacts: feeds come from the database fallback). Then a steady
open-loop load of real requests (``POST /v1/events``, one event with an
idempotency key, and ``GET /v1/recommendations/user/{id}``, each user with
an API key of their own) runs while the faults are injected one after the
other, each in a window of its own:

- ``web``: ``kill -9`` one granian worker (granian respawns it);
- ``redis``: Redis stopped and started again on the same port (no
  persistence: the stream, the queues and the cache are wiped; the
  outbox catch-up ``learning.republish_events`` is sent once it is back,
  as beat does every 60 s);
- ``postgres``: ``pg_ctl stop -m fast``, ``--down`` seconds, start with the
  same options (``scripts/servers.postgres_restart``);
- ``learner``: ``kill -9`` of the learning worker's process group once the
  stream has entries delivered and not acknowledged (mid-batch), then
  started again; what it held is re-claimed (``XAUTOCLAIM`` after
  ``APEX_EVENTS_CLAIM_IDLE_MS``);
- ``spark`` (no HTTP load: the ETL is apart from serving): a Delta table at
  version 0, a Spark job (its own process and JVM) appending to it killed
  with ``kill -9`` once its first data file is on disk; the table must
  still read at version 0 with its rows, and the next write must succeed.

Per fault: the errors seen in its window (by status; ``502`` = nginx found
no upstream, a connection error = the client's), the recovery time (from
the fault to the first success after which every request of the window
succeeded; 0 when nothing failed), and the data lost = events answered 202
minus those events found in ``learning_interaction`` (must be 0). After
the load every request that got no 202 is retried with its idempotency key
(what a client does: ``created: false`` means the first try had been stored
although the client saw an error), the bench waits until every accepted
event is applied (bounded) and checks the coordinator's books
(``events_bench.integrity``: not applied, applied twice, dead letters). For
``learner`` also the events applied vs accepted in its window.

Everything is bounded (``--window`` per fault, ``--rate``, ``--max-requests``)
and every process and the folder are removed on exit (``--keep`` keeps it).

Usage::

    flock /tmp/apex-bench.lock .venv/bin/python benchmarks/faults_bench.py \\
        [--faults web,redis,postgres,learner,spark] [--rate 40] [--window 20] \\
        [--out result.json] [--keep]
    .venv/bin/python benchmarks/faults_bench.py spark-writer --path P --rows N
        (the child job the ``spark`` fault kills; not for direct use)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.events_bench import (  # noqa: E402
    NET_ERRORS,
    Pool,
    Probe,
    Stack,
    integrity,
    ping,
    prepare_users,
)

PYTHON = sys.executable
FAULTS = ("web", "redis", "postgres", "learner", "spark")
STREAM, GROUP = "apex:events", "learning"


def log(message: str) -> None:
    load = os.getloadavg()[0]
    print(f"[{time.strftime('%H:%M:%S')} load {load:4.2f}] {message}", flush=True)


# ================================================================ the load
@dataclass
class Sent:
    kind: str  # event | recs | ping
    user: int
    t: float  # when it was sent (time.time())
    done: float = 0.0
    status: int | None = None
    error: str | None = None
    event_id: int | None = None
    created: bool | None = None  # the answer's: this try stored the row
    retry_id: int | None = None  # the id a retry with the same key got
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def outcome(self) -> str:
        return str(self.status) if self.status is not None else str(self.error)


@dataclass
class Load:
    """Open-loop traffic: request i is sent at ``start + i / rate`` whatever
    the answers before it (at most ``max_inflight`` at once; one more is
    counted as ``client_overloaded``, not sent). ``mix``: shares of
    ``event`` (``POST /v1/events``), ``recs`` (``GET
    /v1/recommendations/user/{id}``) and ``ping`` (``GET /v1/platform/ping``)."""

    port: int
    keys: dict[int, str]  # user id -> raw API key
    movies: list[int]
    rate: float
    mix: dict[str, float] = field(default_factory=lambda: {"event": 0.5, "recs": 0.5})
    seed: int = 18
    timeout: float = 10.0
    max_inflight: int = 256
    max_requests: int = 1_000_000
    results: list[Sent] = field(default_factory=list)
    client_overloaded: int = 0

    def __post_init__(self) -> None:
        self.pool = Pool(self.port)
        self.rng = random.Random(self.seed)
        self.users = sorted(self.keys)

    def _event(self) -> bytes:
        kind = self.rng.choice(("click", "watch", "rating"))
        event: dict[str, Any] = {"kind": kind, "movie_id": self.rng.choice(self.movies)}
        if kind == "rating":
            event["value"] = self.rng.randint(1, 10) / 2
        elif kind == "watch":
            event["value"] = round(self.rng.uniform(0.1, 1.0), 2)
        event["idempotency_key"] = uuid.uuid4().hex
        return json.dumps(event).encode()

    async def send(self, sent: Sent) -> None:
        headers = {"Authorization": f"Api-Key {self.keys[sent.user]}"}
        if sent.kind == "event":
            method, path = "POST", "/v1/events"
        elif sent.kind == "recs":
            method, path = "GET", f"/v1/recommendations/user/{sent.user}?n=10"
        else:
            method, path = "GET", "/v1/platform/ping"
        try:
            status, data = await self.pool.call(
                method, path, headers, sent.body, timeout=self.timeout
            )
        except NET_ERRORS as exc:
            sent.error = type(exc).__name__
        else:
            sent.status = status
            if sent.kind == "event" and status == 202:
                event = json.loads(data)["events"][0]
                sent.event_id, sent.created = event["id"], event.get("created")
        sent.done = time.time()

    async def run(self, stop: asyncio.Event) -> None:
        inflight: set[asyncio.Task] = set()
        kinds, weights = zip(*self.mix.items(), strict=True)
        start = time.time()
        i = 0
        while not stop.is_set() and i < self.max_requests:
            delay = start + i / self.rate - time.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    break
            i += 1
            if len(inflight) >= self.max_inflight:
                self.client_overloaded += 1
                continue
            kind = self.rng.choices(kinds, weights)[0]
            sent = Sent(kind, self.rng.choice(self.users), time.time())
            if kind == "event":
                sent.body = self._event()
            self.results.append(sent)
            task = asyncio.create_task(self.send(sent))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        await asyncio.gather(*inflight, return_exceptions=True)

    async def retry_failed_events(self) -> dict[str, int]:
        """A client's duty: every event that got no 202 again, same
        idempotency key. ``already_recorded``: stored on the first try
        although the client saw an error."""
        out = {"retried": 0, "created": 0, "already_recorded": 0, "still_failing": 0}
        for sent in [s for s in self.results if s.kind == "event" and not s.ok]:
            out["retried"] += 1
            again = Sent("event", sent.user, time.time(), body=sent.body)
            for _attempt in range(5):
                await self.send(again)
                if again.status == 202:
                    break
                await asyncio.sleep(0.5)
            if again.status != 202:
                out["still_failing"] += 1
                continue
            sent.retry_id = again.event_id
            out["already_recorded" if again.created is False else "created"] += 1
        return out

    def accepted_ids(self, t0: float = 0.0, t1: float = float("inf")) -> list[int]:
        return [
            s.event_id for s in self.results
            if s.event_id is not None and t0 <= s.t < t1
        ]  # fmt: skip


def window_summary(results: list[Sent], t0: float, t1: float) -> dict[str, Any]:
    """The requests sent in ``[t0, t1)``: count, errors by outcome, and the
    recovery: from ``t0`` to the first success after the last failure (0
    when nothing failed; None when the window ends failing)."""
    window = [s for s in results if t0 <= s.t < t1]
    sent = sorted((s for s in window if s.done), key=lambda s: s.t)
    bad = [s for s in sent if not s.ok]
    out: dict[str, Any] = {
        "requests": len(sent),
        "in_flight": len(window) - len(sent),
        "errors": len(bad),
        "errors_by_status": dict(Counter(s.outcome for s in bad)),
    }
    if not bad:
        out["recovery_s"] = 0.0
        return out
    last_bad = bad[-1].t
    after = [s.done for s in sent if s.ok and s.t > last_bad]
    out["first_error_after_s"] = round(bad[0].t - t0, 2)
    out["last_error_after_s"] = round(last_bad - t0, 2)
    out["recovery_s"] = round(min(after) - t0, 2) if after else None
    return out


# ================================================================ targets
class Target(Protocol):
    """What the faults act on: the bench's own stack, or the test suite's."""

    port: int  # nginx

    def web_workers(self) -> list[int]: ...
    def restart_redis(self, down_s: float) -> None: ...
    def restart_postgres(self, down_s: float) -> None: ...
    def kill_learner(self) -> None: ...
    def start_learner(self) -> None: ...


def children(pid: int) -> list[int]:
    import psutil

    with contextlib.suppress(psutil.Error):
        return [c.pid for c in psutil.Process(pid).children()]
    return []


@dataclass
class Context:
    target: Target
    probe: Probe
    down_s: float = 2.0
    republish: Callable[[], None] | None = None  # the outbox catch-up, sent


async def wait_for(
    check: Callable[[], bool], timeout: float, step: float = 0.1
) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(step)
    return False


async def fault_web(ctx: Context) -> dict[str, Any]:
    before = ctx.target.web_workers()
    victim = before[0]
    at = time.time()
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        now = ctx.target.web_workers()
        return victim not in now and len(now) >= len(before)

    ok = await wait_for(replaced, 60)
    back = round(time.time() - at, 2) if ok else None
    return {"killed_pid": victim, "workers": len(before), "respawned_after_s": back}


async def fault_redis(ctx: Context) -> dict[str, Any]:
    at = time.time()
    await asyncio.to_thread(ctx.target.restart_redis, ctx.down_s)
    out: dict[str, Any] = {
        "down_s": ctx.down_s,
        "back_after_s": round(time.time() - at, 2),
    }
    if ctx.republish:
        try:
            await asyncio.to_thread(ctx.republish)
            out["republish_sent"] = True
        except Exception as exc:  # noqa: BLE001 - reported; beat sends it again
            out["republish_error"] = f"{type(exc).__name__}: {exc}"[:200]
    return out


async def fault_postgres(ctx: Context) -> dict[str, Any]:
    at = time.time()
    await asyncio.to_thread(ctx.target.restart_postgres, ctx.down_s)
    return {"down_s": ctx.down_s, "back_after_s": round(time.time() - at, 2)}


async def fault_learner(ctx: Context) -> dict[str, Any]:
    redis = ctx.probe.redis()

    def pending() -> bool:  # delivered, not acknowledged: mid-batch
        with contextlib.suppress(Exception):
            return bool(redis.xpending(STREAM, GROUP)["pending"])
        return False

    mid_batch = await wait_for(pending, 5, step=0.005)
    held = 0
    with contextlib.suppress(Exception):
        held = redis.xpending(STREAM, GROUP)["pending"]
    at = time.time()
    await asyncio.to_thread(ctx.target.kill_learner)
    await asyncio.to_thread(ctx.target.start_learner)
    return {"pending_at_kill": held, "mid_batch": mid_batch,
            "restarted_after_s": round(time.time() - at, 2)}  # fmt: skip


HTTP_FAULTS: dict[str, Callable[[Context], Awaitable[dict[str, Any]]]] = {
    "web": fault_web,
    "redis": fault_redis,
    "postgres": fault_postgres,
    "learner": fault_learner,
}


async def run_faults(
    load: Load, ctx: Context, faults: list[str], *, steady_s: float, window_s: float,
    drain_s: float,
) -> dict[str, Any]:  # fmt: skip
    """The load, ``steady_s`` without a fault, then each fault in a window of
    ``window_s`` (from the fault; longer if the fault itself takes longer,
    plus 2 s; the next fault waits for the window's requests to finish);
    then the retries, the drain and the books."""
    stop = asyncio.Event()
    runner = asyncio.create_task(load.run(stop))
    start = time.time()
    await asyncio.sleep(steady_s)
    windows: dict[str, tuple[float, float, dict[str, Any]]] = {}
    try:
        for name in faults:
            log(f"fault {name}")
            t0 = time.time()
            details = await HTTP_FAULTS[name](ctx)
            end = max(t0 + window_s, time.time() + 2)
            await asyncio.sleep(max(0.0, end - time.time()))
            # the window's last requests finish before the next fault: one
            # still in flight would meet it (a killed web worker's 502) and be
            # counted as this fault's failure (at most 10 s)
            settle = time.time() + 10
            while time.time() < settle and any(
                not s.done for s in load.results if t0 <= s.t < end
            ):
                await asyncio.sleep(0.05)
            windows[name] = (t0, end, details)
            log(f"  {name}: {details}; {window_summary(load.results, t0, end)}")
    finally:
        stop.set()
        await runner
    baseline = window_summary(load.results, start, start + steady_s)
    retry = await load.retry_failed_events()
    log(f"retries of the events that got no 202: {retry}")
    accepted = load.accepted_ids()
    retried = [s.retry_id for s in load.results if s.retry_id is not None]
    everything = sorted(set(accepted + retried))
    deadline = time.time() + drain_s
    applied, republished = 0, 0.0
    while time.time() < deadline:
        applied = await asyncio.to_thread(ctx.probe.applied_count, everything)
        if applied >= len(everything):
            break
        # the outbox catch-up (beat: every 60 s) publishes what a Redis
        # restart lost, once it is OUTBOX_GRACE (30 s) old; sooner here
        if ctx.republish and time.time() - republished >= 3:
            republished = time.time()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(ctx.republish)
        await asyncio.sleep(0.5)
    drained_s = round(time.time() - deadline + drain_s, 1)
    rows: dict[str, Any] = {}
    for name, (t0, t1, details) in windows.items():
        row = window_summary(load.results, t0, t1)
        ids = load.accepted_ids(t0, t1)
        stored = await asyncio.to_thread(stored_count, ctx.probe, ids)
        row.update(details=details, events_accepted=len(ids), events_stored=stored,
                   data_lost=len(ids) - stored)  # fmt: skip
        if name == "learner":
            row["events_applied"] = await asyncio.to_thread(
                ctx.probe.applied_count, ids
            )
        rows[name] = row
    stored_all = await asyncio.to_thread(stored_count, ctx.probe, accepted)
    return {
        "requests": len(load.results),
        "rate": load.rate,
        "client_overloaded": load.client_overloaded,
        "seconds": round(time.time() - start, 1),
        "baseline": baseline,
        "faults": rows,
        "events_accepted": len(accepted),
        "events_stored": stored_all,
        "data_lost": len(accepted) - stored_all,
        "retry_of_non_202": retry,
        "events_applied": applied,
        "events_to_apply": len(everything),
        "seconds_until_applied": drained_s,
    }


def stored_count(probe: Probe, ids: list[int]) -> int:
    if not ids:
        return 0
    return probe.sql(
        "SELECT count(*) FROM learning_interaction WHERE id = ANY(%s)", (ids,)
    )[0][0]


# ================================================================ Spark
WRITER = """the child job: append ``rows`` rows to the Delta table at ``path``
in many small tasks on one core, so a kill lands mid-write"""


def spark_writer(path: str, rows: int, partitions: int) -> None:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from etl.spark import SparkSettings, build_spark

    spark = build_spark(
        SparkSettings.from_env(master="local[1]", app_name="apex-faults-writer",
                               driver_memory="512m", shuffle_partitions=1)
    )  # fmt: skip
    frame = spark.range(0, rows, 1, partitions).selectExpr(
        "id + 1000000000 AS id", "CAST(id % 7 AS INT) AS k", "uuid() AS payload"
    )
    print("writing", flush=True)
    frame.write.format("delta").mode("append").save(path)
    print("written", flush=True)
    spark.stop()


def _data_files(path: Path) -> set[str]:
    return {p.name for p in path.glob("*.parquet")}


def spark_kill_mid_write(
    spark: Any, folder: Path, *, rows: int = 200_000, partitions: int = 40,
    timeout: float = 180,
) -> dict[str, Any]:  # fmt: skip
    """Version 0 of a Delta table written with ``spark`` (this process);
    a child Spark job appending to it killed (``kill -9``, its process group:
    Python driver and JVM) once its first data file is on disk; then the
    table read again with ``spark`` and a new append. Returns what was seen."""
    from delta.tables import DeltaTable

    table = folder / "faults-table"
    shutil.rmtree(table, ignore_errors=True)
    spark.range(0, 1000).selectExpr(
        "id", "CAST(id % 7 AS INT) AS k", "uuid() AS payload"
    ).write.format("delta").save(str(table))
    before_files = _data_files(table)
    version0 = DeltaTable.forPath(spark, str(table)).history(1).first()["version"]
    log_out = open(folder / "spark-writer.log", "w")  # noqa: SIM115
    child = subprocess.Popen(
        [PYTHON, str(Path(__file__).resolve()), "spark-writer", "--path", str(table),
         "--rows", str(rows), "--partitions", str(partitions)],
        cwd=ROOT, stdout=log_out, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"},
    )  # fmt: skip
    started = time.time()
    killed_at = None
    try:
        while time.time() - started < timeout:
            if child.poll() is not None:
                break
            if _data_files(table) - before_files:
                killed_at = time.time()
                os.killpg(child.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        log_out.close()
    new_files = _data_files(table) - before_files
    commits = sorted(p.name for p in (table / "_delta_log").glob("*.json"))
    t0 = time.time()
    history = DeltaTable.forPath(spark, str(table)).history(1).first()
    rows_after = spark.read.format("delta").load(str(table)).count()
    read_s = time.time() - t0
    spark.range(0, 10).selectExpr(
        "id + 2000000000 AS id", "CAST(id % 7 AS INT) AS k", "uuid() AS payload"
    ).write.format("delta").mode("append").save(str(table))
    after_write = DeltaTable.forPath(spark, str(table)).history(1).first()["version"]
    rows_final = spark.read.format("delta").load(str(table)).count()
    return {
        "child_exit": child.returncode,
        "killed_mid_write": killed_at is not None,
        "killed_after_s": round(killed_at - started, 1) if killed_at else None,
        "orphan_data_files": len(new_files),
        "commit_files": commits,
        "version_before": version0,
        "version_after_kill": history["version"],
        "rows_before": 1000,
        "rows_after_kill": rows_after,
        "read_after_kill_s": round(read_s, 2),
        "next_write_version": after_write,
        "rows_after_next_write": rows_final,
        "data_lost": 1000 - rows_after,
    }


# ================================================================ the bench
class BenchTarget:
    """The bench's own stack (``events_bench.Stack``)."""

    def __init__(self, stack: Stack, worker_concurrency: int) -> None:
        self.stack = stack
        self.port = stack.http_port
        self.worker_concurrency = worker_concurrency

    def web_workers(self) -> list[int]:
        return children(self.stack.procs["wsgi"].pid)

    def restart_redis(self, down_s: float) -> None:
        self.stack.restart_redis(down_s)

    def restart_postgres(self, down_s: float) -> None:
        from scripts.servers import postgres_restart

        postgres_restart(self.stack.folder / "pg", down_s=down_s)

    def kill_learner(self) -> None:
        self.stack.kill_group("worker-learning")

    def start_learner(self) -> None:
        from apex_site.celery import app

        self.stack.start_worker("learning", self.worker_concurrency)
        ping(app, "learner", 60)


def republish() -> None:
    """Send the outbox catch-up, on a broker connection of its own (the
    pooled ones may predate a Redis restart)."""
    from apex_site.celery import app

    with app.connection_for_write() as broker:
        app.send_task("learning.republish_events", queue="learning", connection=broker)


def bring_up(args: argparse.Namespace, folder: Path) -> tuple[Stack, Any]:
    """The stack of ``events_bench`` in the production shape, its users."""
    stack = Stack(folder, beat=True, log_level="WARNING", metering=False)
    code = stack.snapshot(args.source)
    log(f"code {code}; PostgreSQL + Redis under {folder}")
    stack.start_databases()
    stack.manage("migrate", "--noinput", "-v", "0")
    log("bootstrap (ML-100K, no search index)")
    stack.manage("bootstrap", "--search-index", "skip")
    users = prepare_users(
        argparse.Namespace(seed=args.seed, sockets=0, users=args.users), stack
    )
    stack.manage("collectstatic", "--noinput", "-v", "0")
    stack.start_production_shape(args.web_workers)
    nice = getattr(args, "worker_nice", 0)
    stack.start_worker("learning", args.worker_concurrency, nice)
    stack.start_worker("default", args.worker_concurrency, nice)
    stack.start_beat()
    return stack, users


async def warm(load: Load, seconds: float) -> None:
    """Every WSGI worker past its first (slow) requests."""
    stop = asyncio.Event()
    runner = asyncio.create_task(load.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await runner


TABLE_COLUMNS = ("fault", "requests", "errors (by status)", "recovery s",
                 "accepted", "stored", "data lost", "applied")  # fmt: skip


def table(result: dict[str, Any]) -> str:
    lines = [" | ".join(TABLE_COLUMNS), " | ".join("---" for _ in TABLE_COLUMNS)]
    for name, row in result.get("faults", {}).items():
        errors = ", ".join(f"{k}: {v}" for k, v in row["errors_by_status"].items())
        lines.append(" | ".join(str(x) for x in (
            name, row["requests"], f"{row['errors']} ({errors})" if errors else 0,
            row["recovery_s"], row["events_accepted"], row["events_stored"],
            row["data_lost"], row.get("events_applied", ""),
        )))  # fmt: skip
    if spark := result.get("spark"):
        lines.append(" | ".join(str(x) for x in (
            "spark", "-", "job killed" if spark["killed_mid_write"] else "not killed",
            f"read {spark['read_after_kill_s']}", spark["rows_before"],
            spark["rows_after_kill"], spark["data_lost"],
            f"v{spark['version_after_kill']}, next write "
            f"v{spark['next_write_version']}",
        )))  # fmt: skip
    if books := result.get("books"):
        lines.append(
            f"\nall runs: {books['accepted_ids']} events accepted, "
            f"{books['missing_from_interaction_log']} missing from the log, "
            f"{books['not_applied']} not applied, "
            f"{books['user_profile_over_counted']} applied twice (profiles), "
            f"{books['dead_letters']} dead letters"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--rate", type=float, default=40, help="requests/s, open loop")
    parser.add_argument("--event-share", type=float, default=0.5)
    parser.add_argument("--steady", type=float, default=10, help="s before the first")
    parser.add_argument("--window", type=float, default=20, help="s per fault")
    parser.add_argument("--learner-window", type=float, default=45,
                        help="s for the learner fault: re-claiming waits "
                        "APEX_EVENTS_CLAIM_IDLE_MS (30 s)")  # fmt: skip
    parser.add_argument("--down", type=float, default=2, help="s Redis/PG stay down")
    parser.add_argument("--drain", type=float, default=120, help="s to wait to apply")
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--spark-rows", type=int, default=200_000)
    parser.add_argument("--source", choices=("worktree", "head"), default="worktree")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; choose from {FAULTS}")
    folder = Path(tempfile.mkdtemp(prefix="apex-faults-"))
    folder.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    result: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "loadavg_start": os.getloadavg(), "cpus": os.cpu_count(),
        "args": {k: v if not isinstance(v, Path) else str(v)
                 for k, v in vars(args).items()},
    }  # fmt: skip
    stack = None
    try:
        http = [f for f in faults if f in HTTP_FAULTS]
        if http:
            stack, users = bring_up(args, folder)
            probe = Probe(stack.database_url, stack.redis_url)
            load = Load(stack.http_port, users.keys, users.movies, args.rate,
                        {"event": args.event_share, "recs": 1 - args.event_share},
                        seed=args.seed, max_requests=args.max_requests)  # fmt: skip
            log("warming the web workers")
            asyncio.run(warm(Load(stack.http_port, users.keys, users.movies, 10,
                                  seed=1), 8))  # fmt: skip
            ctx = Context(BenchTarget(stack, args.worker_concurrency), probe,
                          args.down, republish)  # fmt: skip
            window = args.window
            results: dict[str, Any] = {"faults": {}}
            # one run per window length: the learner's is longer
            order = [f for f in http if f != "learner"]
            if order:
                results = asyncio.run(run_faults(
                    load, ctx, order, steady_s=args.steady, window_s=window,
                    drain_s=args.drain,
                ))  # fmt: skip
            load2 = None
            if "learner" in http:
                load2 = Load(stack.http_port, users.keys, users.movies, args.rate,
                             load.mix, seed=args.seed + 1,
                             max_requests=args.max_requests)  # fmt: skip
                learner = asyncio.run(run_faults(
                    load2, ctx, ["learner"], steady_s=min(args.steady, 5),
                    window_s=args.learner_window, drain_s=args.drain,
                ))  # fmt: skip
                if order:
                    results["faults"].update(learner["faults"])
                    results["learner_run"] = {
                        k: v for k, v in learner.items() if k != "faults"
                    }
                else:
                    results = learner
            result.update(results)
            ids = load.accepted_ids() + (load2.accepted_ids() if load2 else [])
            result["books"] = integrity(probe, dict.fromkeys(ids, 0.0))
            result["log_problems"] = {
                k: v["exceptions"] for k, v in stack.log_problems().items()
            }
        if "spark" in faults:
            log("fault spark: a Delta append killed mid-write")
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            from etl.spark import SparkSettings, build_spark

            spark = build_spark(SparkSettings.from_env(
                master="local[1]", app_name="apex-faults", driver_memory="512m",
                shuffle_partitions=1,
            ))  # fmt: skip
            try:
                result["spark"] = spark_kill_mid_write(
                    spark, folder, rows=args.spark_rows
                )
            finally:
                spark.stop()
            log(f"  spark: {result['spark']}")
    finally:
        if stack is not None:
            stack.close()
        result["loadavg_end"] = os.getloadavg()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(table(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str))
        print(f"wrote {args.out}")


def writer_main() -> None:
    parser = argparse.ArgumentParser(description=WRITER)
    parser.add_argument("command")
    parser.add_argument("--path", required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=40)
    args = parser.parse_args()
    spark_writer(args.path, args.rows, args.partitions)


if __name__ == "__main__":
    if sys.argv[1:2] == ["spark-writer"]:
        writer_main()
    else:
        main()
