"""A soak run on the production shape: minutes at a fraction of the peak
(issue 18).

The stack is the one of ``benchmarks/faults_bench.py`` (``bring_up``: a
snapshot of the code, PostgreSQL, Redis, ``migrate``, ``bootstrap`` of
ML-100K, nginx -> granian + uvicorn, the learning and default Celery
workers and beat, production settings; no artifacts unless
``--artifacts DIR`` is given, so recommendations come from the tier that
is available: the database fallback without one). Then:

1. **peak** (unless ``--rate``): closed-loop mixed traffic at concurrency
   ``--ramp`` (default 4, 8, 16, 32), ``--ramp-seconds`` each; the peak is
   the highest throughput of a level without an error;
2. **soak**: open-loop mixed traffic (``--mix``: recommendation GETs, event
   POSTs with idempotency keys, ``GET /v1/platform/ping``) at ``--fraction``
   of the peak (a constant rate, whatever the answers: ``faults_bench.Load``)
   for ``--minutes``. Every ``--sample`` seconds the RSS of every server
   process (psutil: granian's master and workers, uvicorn, nginx, each Celery
   worker and its pool children, beat), and beside the latency what the
   servers were doing (``sample_system``): the CPU each component used (web,
   workers, PostgreSQL, Redis, the client), the Celery queue lengths, the
   event stream's lag and pending entries, PostgreSQL checkpoints and
   running autovacuum workers, the load average.

Report: total requests, errors (must be 0), per minute the requests, errors,
p50 and p99 latency (ms) with the system sample beside them; per process the
RSS at the start and the end and its least-squares slope in MB/min ("flat"
means about 0); the load average.

Usage::

    flock /tmp/apex-bench.lock .venv/bin/python benchmarks/soak_bench.py \\
        [--minutes 10] [--fraction 0.8] [--rate R] [--out soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.events_bench import cpu_share  # noqa: E402
from benchmarks.faults_bench import Load, Sent, bring_up, log, warm  # noqa: E402

QUEUES = ("default", "learning")  # the Celery queues the soak's workers drain


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))
    return round(ordered[k], 1)


async def closed_loop(load: Load, concurrency: int, seconds: float) -> dict[str, Any]:
    """``concurrency`` senders back to back for ``seconds``: throughput."""
    start = time.time()
    done: list[Sent] = []
    kinds, weights = zip(*load.mix.items(), strict=True)

    async def sender() -> None:
        while time.time() - start < seconds:
            kind = load.rng.choices(kinds, weights)[0]
            sent = Sent(kind, load.rng.choice(load.users), time.time())
            if kind == "event":
                sent.body = load._event()  # noqa: SLF001 - the same traffic
            await load.send(sent)
            done.append(sent)

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    secs = time.time() - start
    errors = sum(1 for s in done if not s.ok)
    return {
        "concurrency": concurrency,
        "requests": len(done),
        "req_per_s": round(len(done) / secs, 1),
        "errors": errors,
        "p50_ms": pct([1e3 * (s.done - s.t) for s in done], 50),
        "p99_ms": pct([1e3 * (s.done - s.t) for s in done], 99),
    }


def processes(stack: Any) -> dict[int, str]:
    """Every server process: pid -> a name (``granian-worker``, ...)."""
    import psutil

    names = {"wsgi": "granian", "uvicorn": "uvicorn", "nginx": "nginx",
             "worker-learning": "celery-learning", "worker-default": "celery-default",
             "beat": "celery-beat"}  # fmt: skip
    out: dict[int, str] = {}
    for key, proc in stack.procs.items():
        name = names.get(key, key)
        try:
            root = psutil.Process(proc.pid)
            out[root.pid] = f"{name}-master" if key != "beat" else name
            for child in root.children(recursive=True):
                out[child.pid] = f"{name}-{'worker' if key == 'wsgi' else 'child'}"
        except psutil.Error:
            continue
    return out


def rss_mb(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss / 2**20
    except psutil.Error:
        return None


async def sample_rss(
    stack: Any, every: float, stop: asyncio.Event, out: list[dict[str, Any]]
) -> None:
    start = time.time()
    while not stop.is_set():
        procs = await asyncio.to_thread(processes, stack)
        row = {"t_min": round((time.time() - start) / 60, 3), "rss_mb": {}}
        for pid, name in procs.items():
            if (mb := rss_mb(pid)) is not None:
                row["rss_mb"][f"{name}:{pid}"] = round(mb, 1)
        out.append(row)
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass


def system_state(stack: Any) -> dict[str, Any]:
    """One reading of what the servers are doing (cumulative CPU seconds)."""
    import psycopg
    import redis

    state: dict[str, Any] = {"t": time.time(), "cpu_s": stack.cpu(),
                             "loadavg_1m": os.getloadavg()[0]}  # fmt: skip
    try:
        r = redis.Redis.from_url(stack.redis_url, socket_timeout=2)
        state["queues"] = {q: int(r.llen(q)) for q in QUEUES}
        groups = r.xinfo_groups("apex:events")
        state["stream"] = {g["name"].decode() if isinstance(g["name"], bytes)
                           else g["name"]: {"lag": g.get("lag"),
                                            "pending": g.get("pending")}
                           for g in groups}  # fmt: skip
    except redis.RedisError as exc:
        state["redis_error"] = str(exc)
    try:
        with psycopg.connect(stack.database_url, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT checkpoints_timed + checkpoints_req, buffers_checkpoint, "
                "buffers_backend, (SELECT count(*) FROM pg_stat_activity "
                "WHERE backend_type = 'autovacuum worker'), "
                "(SELECT count(*) FROM pg_stat_activity WHERE state = 'active') "
                "FROM pg_stat_bgwriter"
            ).fetchone()
        state["pg"] = dict(zip(("checkpoints", "buffers_checkpoint",
                                "buffers_backend", "autovacuum_workers",
                                "active_backends"), row, strict=True))  # fmt: skip
    except psycopg.Error as exc:
        state["pg_error"] = str(exc)
    return state


async def sample_system(
    stack: Any, every: float, stop: asyncio.Event, out: list[dict[str, Any]]
) -> None:
    """``system_state`` every ``every`` seconds, CPU as cores used since the last."""
    last = await asyncio.to_thread(system_state, stack)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            pass
        now = await asyncio.to_thread(system_state, stack)
        row = {k: v for k, v in now.items() if k != "cpu_s"}
        row["cores"] = cpu_share(last["cpu_s"], now["cpu_s"], now["t"] - last["t"])
        out.append(row)
        last = now


def system_per_minute(
    rows: list[dict[str, Any]], start: float
) -> dict[int, dict[str, Any]]:
    """Per minute of the soak: mean cores per component, the largest queue
    lengths and stream lag, checkpoints begun, most autovacuum workers."""
    buckets: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        buckets.setdefault(int((row["t"] - start) // 60) + 1, []).append(row)
    out = {}
    for minute, group in sorted(buckets.items()):
        cores: dict[str, list[float]] = {}
        for row in group:
            for k, v in row["cores"].items():
                if isinstance(v, float | int):
                    cores.setdefault(k, []).append(v)
        checkpoints = [r["pg"]["checkpoints"] for r in group if "pg" in r]
        out[minute] = {
            "cores": {k: round(statistics.fmean(v), 2) for k, v in cores.items()},
            "queue_max": {
                q: max((r.get("queues", {}).get(q, 0) for r in group), default=None)
                for q in QUEUES
            },  # fmt: skip
            "stream_lag_max": max(
                (
                    g.get("lag") or 0
                    for r in group
                    for g in r.get("stream", {}).values()
                ),
                default=None,
            ),  # fmt: skip
            "checkpoints": checkpoints[-1] - checkpoints[0] if checkpoints else None,
            "autovacuum_max": max(
                (r["pg"]["autovacuum_workers"] for r in group if "pg" in r),
                default=None,
            ),
            "loadavg_1m": round(group[-1]["loadavg_1m"], 1),
        }
    return out


def slopes(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per process: first and last RSS, the least-squares slope (MB/min)."""
    series: dict[str, list[tuple[float, float]]] = {}
    for row in samples:
        for key, mb in row["rss_mb"].items():
            series.setdefault(key, []).append((row["t_min"], mb))

    def slope(points: list[tuple[float, float]]) -> float | None:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        if len(points) < 3 or len(set(xs)) < 2:
            return None
        return round(statistics.linear_regression(xs, ys).slope, 3)

    out = {}
    for key, points in sorted(series.items()):
        ys = [p[1] for p in points]
        out[key] = {
            "samples": len(points),
            "first_mb": ys[0],
            "last_mb": ys[-1],
            "max_mb": max(ys),
            "slope_mb_per_min": slope(points),
            # past the warm-up (caches, pools and lazy imports filling)
            "slope_second_half_mb_per_min": slope(points[len(points) // 2 :]),
        }
    return out


def per_minute(results: list[Sent], start: float) -> list[dict[str, Any]]:
    buckets: dict[int, list[Sent]] = {}
    for s in results:
        buckets.setdefault(int((s.t - start) // 60), []).append(s)
    rows = []
    for minute in sorted(buckets):
        sent = buckets[minute]
        lat = [1e3 * (s.done - s.t) for s in sent if s.ok]
        rows.append({
            "minute": minute + 1,
            "requests": len(sent),
            "errors": sum(1 for s in sent if not s.ok),
            "p50_ms": pct(lat, 50),
            "p99_ms": pct(lat, 99),
            "by_kind": {k: sum(1 for s in sent if s.kind == k)
                        for k in sorted({s.kind for s in sent})},
        })  # fmt: skip
    return rows


async def soak(args: argparse.Namespace, stack: Any, users: Any) -> dict[str, Any]:
    mix = dict(zip(("recs", "event", "ping"), args.mix, strict=True))
    result: dict[str, Any] = {"mix": mix}
    await warm(Load(stack.http_port, users.keys, users.movies, 10, seed=1), 8)
    rate = args.rate
    if rate is None:
        probe = Load(stack.http_port, users.keys, users.movies, 1, mix, seed=2)
        levels = []
        for c in args.ramp:
            level = await closed_loop(probe, c, args.ramp_seconds)
            log(f"peak ramp: {level}")
            levels.append(level)
        clean = [lv for lv in levels if lv["errors"] == 0] or levels
        peak = max(lv["req_per_s"] for lv in clean)
        result["ramp"] = levels
        result["peak_req_per_s"] = peak
        rate = round(args.fraction * peak, 1)
        await asyncio.sleep(5)  # the queues the ramp left behind drain
    result["rate"] = rate
    log(f"soak: {rate} req/s open loop for {args.minutes} min")
    load = Load(stack.http_port, users.keys, users.movies, rate, mix, seed=args.seed,
                max_requests=int(rate * args.minutes * 60) + 1)  # fmt: skip
    stop = asyncio.Event()
    samples: list[dict[str, Any]] = []
    sampler = asyncio.create_task(sample_rss(stack, args.sample, stop, samples))
    system: list[dict[str, Any]] = []
    watcher = asyncio.create_task(sample_system(stack, args.sample, stop, system))
    runner = asyncio.create_task(load.run(stop))
    start = time.time()
    load_before = os.getloadavg()
    while time.time() - start < args.minutes * 60 and not runner.done():
        await asyncio.sleep(min(30, args.minutes * 60 - (time.time() - start)))
        done = [s for s in load.results if s.done]
        log(f"  soak {time.time() - start:5.0f}s: {len(done)} answered, "
            f"{sum(1 for s in done if not s.ok)} errors")  # fmt: skip
    stop.set()
    await runner
    await sampler
    await watcher
    minutes = per_minute(load.results, start)
    by_minute = system_per_minute(system, start)
    for m in minutes:
        m["system"] = by_minute.get(m["minute"])
    errors: dict[str, int] = {}
    for s in load.results:
        if not s.ok:
            errors[s.outcome] = errors.get(s.outcome, 0) + 1
    p99s = [m["p99_ms"] for m in minutes if m["p99_ms"] is not None]
    result.update(
        seconds=round(time.time() - start, 1),
        requests=len(load.results),
        achieved_req_per_s=round(len(load.results) / (time.time() - start), 1),
        client_overloaded=load.client_overloaded,
        errors=sum(errors.values()),
        errors_by_status=errors,
        per_minute=minutes,
        p99_ms_min_max=[min(p99s), max(p99s)] if p99s else None,
        rss=slopes(samples),
        rss_samples=len(samples),
        rss_series=samples,
        system_series=system,
        loadavg_before_after=[load_before, os.getloadavg()],
    )
    return result


def report(result: dict[str, Any]) -> str:
    lines = [
        f"rate {result['rate']} req/s (peak {result.get('peak_req_per_s')}), "
        f"{result['requests']} requests, {result['errors']} errors "
        f"{result['errors_by_status']}, client overloaded "
        f"{result['client_overloaded']}",
        "",
        "minute | requests | errors | p50 ms | p99 ms | queues max (default, "
        "learning) | stream lag max | checkpoints | autovacuum | load | cores",
        "--- | --- | --- | --- | --- | --- | --- | --- | --- | --- | ---",
    ]
    for m in result["per_minute"]:
        sys_ = m.get("system") or {}
        queues = sys_.get("queue_max", {})
        cores = sorted(sys_.get("cores", {}).items(), key=lambda kv: -kv[1])
        lines.append(
            f"{m['minute']} | {m['requests']} | {m['errors']} | {m['p50_ms']} | "
            f"{m['p99_ms']} | {', '.join(str(queues.get(q)) for q in QUEUES)} | "
            f"{sys_.get('stream_lag_max')} | {sys_.get('checkpoints')} | "
            f"{sys_.get('autovacuum_max')} | {sys_.get('loadavg_1m')} | "
            + ", ".join(f"{k} {v}" for k, v in cores[:6])
        )
    lines += [
        "",
        "process | first MB | last MB | slope MB/min | slope, 2nd half",
        "--- | --- | --- | --- | ---",
    ]
    for key, r in result["rss"].items():
        lines.append(
            f"{key} | {r['first_mb']} | {r['last_mb']} | {r['slope_mb_per_min']} | "
            f"{r.get('slope_second_half_mb_per_min')}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--fraction", type=float, default=0.8)
    parser.add_argument("--rate", type=float, help="req/s; skips the peak ramp")
    parser.add_argument("--ramp", type=lambda v: [int(x) for x in v.split(",")],
                        default=[4, 8, 16, 32])  # fmt: skip
    parser.add_argument("--ramp-seconds", type=float, default=10)
    parser.add_argument("--mix", type=lambda v: [float(x) for x in v.split(",")],
                        default=[0.6, 0.3, 0.1],
                        help="shares of recommendations, events, ping")  # fmt: skip
    parser.add_argument("--sample", type=float, default=10, help="s between RSS reads")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--worker-nice", type=int, default=0,
                        help="run the Celery workers at this nice level")  # fmt: skip
    parser.add_argument("--source", choices=("worktree", "head"), default="worktree")
    parser.add_argument("--artifacts", type=Path,
                        help="an artifacts folder to serve")  # fmt: skip
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="apex-soak-"))
    folder.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    if args.artifacts:
        shutil.copytree(args.artifacts, folder / "artifacts")
    result: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
        "args": {k: str(v) if isinstance(v, Path) else v
                 for k, v in vars(args).items()},
    }  # fmt: skip
    stack = None
    try:
        stack, users = bring_up(args, folder)
        result.update(asyncio.run(soak(args, stack, users)))
        result["log_problems"] = {
            k: v["exceptions"] for k, v in stack.log_problems().items()
        }
    finally:
        if stack is not None:
            stack.close()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(report(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
