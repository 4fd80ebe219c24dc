"""HTTP load test of ``GET /v1/recommendations/user/{id}`` on a running server.

A small asyncio client (raw HTTP/1.1 with keep-alive: ``httpx`` is not in the
virtualenv) keeps ``concurrency`` connections busy for ``--duration`` seconds
per level (default levels 1, 8, 32) against ``127.0.0.1`` and reports, per
level: requests/s, latency p50 / p95 / p99, errors, the share of fallback
responses, and the engine-only time per request (``meta.timings_ms.engine``,
measured inside the serving engine), so the HTTP + Django overhead shows as
the ratio latency / engine time.

User ids are realistic: users that have history in the interaction log,
drawn at random (seeded) from the database the server uses, each worker
cycling through its own shuffled list. The endpoint lets staff read any user,
so the client authenticates with a staff API key: pass ``--api-key`` or let
``--create-staff-key`` make one (a ``bench@apex.invalid`` staff account).
Both need the server's database settings (``DATABASE_URL`` / ``APEX_DATA_DIR``)
in this process's environment.

``--per-user-keys`` instead gives every drawn user an API key of their own
and each request reads the caller's own list, as a product user does. It
also keeps DRF's per-user throttle (``APEX_THROTTLE_USER``, 600/min by
default) realistic: with one staff key every request lands in the same
throttle bucket, which refuses the load after 600 requests a minute unless
the rate is raised, and then the bucket's history (a pickled list in Redis
with one timestamp per request in the window) grows with the request rate.

``--client wrk`` drives the same requests (same users, keys and order)
with ``wrk`` (C, one thread, ``concurrency`` connections) through a generated
Lua script, so the load generator takes far less of the 2 shared cores than
the Python client; wrk does not parse bodies, so the engine time and the
fallback share then come from a short Python-client sample (``--sample``
requests at concurrency 1) after each level.

Usage::

    python benchmarks/serving_http_bench.py --create-staff-key \\
        [--base-url http://127.0.0.1:8000] [--duration 20] \\
        [--concurrency 1,8,32] [--users 500] [--n 10] [--out result.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------ database side
def _django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apex_site.settings.base")
    import django

    django.setup()


def users_with_history(limit: int, seed: int) -> list[int]:
    """Up to ``limit`` random ids of users with at least five events."""
    _django()
    from django.db.models import Count

    from learning.models import Interaction

    ids = list(
        Interaction.objects.values("user_id")
        .annotate(events=Count("id"))
        .filter(events__gte=5)
        .values_list("user_id", flat=True)
    )
    random.Random(seed).shuffle(ids)
    return ids[:limit]


def staff_api_key() -> str:
    """A fresh API key of the bench staff account (created if missing)."""
    _django()
    from accounts.models import User
    from accounts.services import api_key_create

    user = User.objects.filter(email="bench@apex.invalid").first()
    if user is None:
        user = User.objects.create_user("bench@apex.invalid", None, is_staff=True)
    elif not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    _key, raw = api_key_create(user=user, name=f"bench {time.strftime('%H%M%S')}")
    return raw


def own_api_keys(user_ids: list[int]) -> dict[int, str]:
    """A fresh API key per user (``--per-user-keys``)."""
    _django()
    from accounts.models import User
    from accounts.services import api_key_create

    users = User.objects.in_bulk(user_ids)
    name = f"bench {time.strftime('%H%M%S')}"
    return {
        uid: api_key_create(user=users[uid], name=name)[1]
        for uid in user_ids
        if uid in users
    }


# ------------------------------------------------------------ HTTP client
class HttpError(Exception):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection (Content-Length or chunked bodies)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None

    async def get(
        self, path: str, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        if self.writer is None:
            await self._open()
        assert self.reader is not None and self.writer is not None
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        fields = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            body = await self.reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        else:
            raise HttpError("response without a length")
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, body, fields

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


# ------------------------------------------------------------ the load
@dataclass
class Level:
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    engine_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    fallbacks: int = 0
    elapsed_s: float = 0.0
    wrk: dict[str, float] | None = None  # latency percentiles (ms) from wrk
    wrk_requests: int = 0
    stages: dict[str, list[float]] = field(default_factory=dict)  # Server-Timing

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def summary(self) -> dict:
        lat = sorted(self.latencies_ms)
        eng = sorted(self.engine_ms)
        done = len(lat)
        out = {
            "concurrency": self.concurrency,
            "requests": done,
            "errors": self.errors,
            "seconds": round(self.elapsed_s, 2),
            "rps": round(done / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "fallback_share": round(self.fallbacks / done, 3) if done else None,
        }
        for name, values in (("latency_ms", lat), ("engine_ms", eng)):
            out[name] = {
                f"p{q}": round(_percentile(values, q), 3) if values else None
                for q in (50, 95, 99)
            }
            out[name]["mean"] = round(statistics.fmean(values), 3) if values else None
        if self.wrk is not None:  # latency and rate from wrk, engine from a sample
            out["client"] = "wrk"
            out["requests"] = self.wrk_requests
            out["rps"] = round(self.wrk_requests / self.elapsed_s, 1)
            out["latency_ms"] = {k: round(v, 3) for k, v in self.wrk.items()}
            lat = [self.wrk["p50"]]
        if self.stages:
            out["server_timing_p50_ms"] = {
                name: round(statistics.median(values), 3)
                for name, values in self.stages.items()
            }
        if lat and eng:
            out["latency_over_engine_p50"] = round(
                _percentile(lat, 50) / max(_percentile(eng, 50), 1e-9), 2
            )
        return out


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


async def _worker(
    level: Level,
    host: str,
    port: int,
    requests: list[tuple[str, dict[str, str]]],
    stop_at: float,
    record_from: float,
    limit: int | None = None,
) -> None:
    conn = Connection(host, port)
    i = 0
    try:
        while time.perf_counter() < stop_at and (limit is None or i < limit):
            path, headers = requests[i % len(requests)]
            i += 1
            started = time.perf_counter()
            try:
                status, body, fields = await conn.get(path, headers)
            except (OSError, asyncio.IncompleteReadError, HttpError, ValueError) as exc:
                level.error(type(exc).__name__)
                await conn.close()
                continue
            elapsed = 1e3 * (time.perf_counter() - started)
            if started < record_from:  # warm-up
                continue
            if status != 200:
                level.error(f"http_{status}")
                continue
            level.latencies_ms.append(elapsed)
            for part in fields.get("server-timing", "").split(","):
                name, _, duration = part.strip().partition(";dur=")
                if duration:
                    level.stages.setdefault(name, []).append(float(duration))
            meta = json.loads(body).get("meta", {})
            engine = meta.get("timings_ms", {}).get("engine")
            if engine is not None:
                level.engine_ms.append(float(engine))
            if meta.get("fallback"):
                level.fallbacks += 1
    finally:
        await conn.close()


async def run_level(
    concurrency: int,
    *,
    base_url: str,
    user_ids: list[int],
    query: str,
    headers_for: Callable[[int], dict[str, str]],
    duration: float,
    warmup: float,
    seed: int,
) -> Level:
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    level = Level(concurrency)
    start = time.perf_counter()
    record_from = start + warmup
    stop_at = record_from + duration
    workers = []
    for w in range(concurrency):
        ids = list(user_ids)
        random.Random(seed + w).shuffle(ids)
        requests = [
            (
                PATH.format(user=u, query=query),
                headers_for(u),
            )
            for u in ids
        ]
        workers.append(_worker(level, host, port, requests, stop_at, record_from))
    await asyncio.gather(*workers)
    level.elapsed_s = time.perf_counter() - record_from
    return level


_WRK_SCRIPT = """
local requests = {__REQUESTS__}
local i = 0
request = function()
  i = i + 1
  local r = requests[(i - 1) % #requests + 1]
  return wrk.format("GET", r[1], {["Authorization"] = r[2],
                                  ["Accept"] = "application/json"})
end
done = function(summary, latency, reqs)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50": %d, "p95": %d, ' ..
    '"p99": %d, "mean": %f, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(95), latency:percentile(99), latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def run_level_wrk(
    concurrency: int,
    *,
    base_url: str,
    user_ids: list[int],
    query: str,
    headers_for: Callable[[int], dict[str, str]],
    duration: float,
    warmup: float,
    seed: int,
) -> Level:
    """One level with ``wrk`` (see the module docstring)."""
    import shutil
    import subprocess
    import tempfile

    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found (apt-get install wrk), or use --client python")
    ids = list(user_ids)
    random.Random(seed).shuffle(ids)
    entries = ",".join(
        f'{{"{PATH.format(user=u, query=query)}", "{headers_for(u)["Authorization"]}"}}'
        for u in ids
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT.replace("__REQUESTS__", entries))
    level = Level(concurrency)
    command = [wrk, "-t1", f"-c{concurrency}", "--timeout", "10s", "-s", script.name]
    if warmup > 0:
        subprocess.run([*command, f"-d{max(1, round(warmup))}s", base_url],
                       check=True, capture_output=True)  # fmt: skip
    out = subprocess.run(
        [*command, f"-d{max(1, round(duration))}s", base_url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    Path(script.name).unlink()
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    w = json.loads(line[len("WRKJSON ") :])
    level.elapsed_s = w["duration_us"] / 1e6
    for kind in ("connect", "read", "write", "status", "timeout"):
        if w[kind]:
            level.errors[kind if kind != "status" else "http_non_2xx"] = w[kind]
    level.wrk = {q: w[q] / 1e3 for q in ("p50", "p95", "p99", "mean")}
    level.wrk_requests = w["requests"]
    return level


async def _sample(
    count: int,
    base_url: str,
    user_ids: list[int],
    query: str,
    headers_for: Callable[[int], dict[str, str]],
) -> Level:
    """``count`` sequential Python-client requests (engine time, fallbacks)."""
    url = urlsplit(base_url)
    level = Level(1)
    requests = [
        (PATH.format(user=u, query=query), headers_for(u)) for u in user_ids[:count]
    ]
    worker = _worker(level, url.hostname or "127.0.0.1", url.port or 80, requests,
                     stop_at=time.perf_counter() + 3600, record_from=0.0,
                     limit=len(requests))  # fmt: skip
    await worker
    return level


PATH = "/v1/recommendations/user/{user}?{query}"
"""What each request GETs (``--path``): ``{user}`` and ``{query}`` filled in."""


def _auth(raw_key: str) -> dict[str, str]:
    return {"Authorization": f"Api-Key {raw_key}", "Accept": "application/json"}


def main(argv: list[str] | None = None) -> int:
    global PATH
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--duration", type=float, default=20.0, help="s per level")
    parser.add_argument("--warmup", type=float, default=2.0, help="s, not recorded")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--users", type=int, default=500, help="distinct user ids")
    parser.add_argument("--user-ids", help="comma-separated ids instead of the DB")
    parser.add_argument("--n", type=int, default=10, help="list length")
    parser.add_argument("--explain", default="true")
    parser.add_argument("--api-key", default=os.environ.get("APEX_BENCH_API_KEY"))
    parser.add_argument("--create-staff-key", action="store_true")
    parser.add_argument(
        "--per-user-keys",
        action="store_true",
        help="one key per user, each reading their own list (see above)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--client", choices=("python", "wrk"), default="python")
    parser.add_argument(
        "--sample", type=int, default=200,
        help="with --client wrk: Python-client requests for the engine time",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    parser.add_argument(
        "--path", default=PATH,
        help="request path; `/v1/platform/ping` is the framework floor",
    )  # fmt: skip
    args = parser.parse_args(argv)
    PATH = args.path

    if args.user_ids:
        user_ids = [int(x) for x in args.user_ids.split(",") if x.strip()]
    else:
        user_ids = users_with_history(args.users, args.seed)
    if not user_ids:
        parser.error("no users with history (load data, or pass --user-ids)")
    headers_for: Callable[[int], dict[str, str]]
    if args.per_user_keys:
        keys = own_api_keys(user_ids)
        user_ids = [u for u in user_ids if u in keys]
        per_user = {u: _auth(raw) for u, raw in keys.items()}
        headers_for = per_user.__getitem__
    else:
        api_key = args.api_key
        if args.create_staff_key:
            api_key = staff_api_key()
        if not api_key:
            parser.error(
                "pass --api-key (a staff key), --create-staff-key or --per-user-keys"
            )
        shared = _auth(api_key)
        headers_for = lambda _user_id: shared  # noqa: E731
    query = f"n={args.n}&explain={args.explain}"
    levels = [int(c) for c in args.concurrency.split(",")]

    results = []
    print(
        f"{'conc':>4} {'req':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'engine p50':>10} {'ratio':>6} {'fallback':>8} errors"
        "  | Server-Timing p50 (sample)"
    )
    common = {
        "base_url": args.base_url, "user_ids": user_ids, "query": query,
        "headers_for": headers_for, "seed": args.seed,
    }  # fmt: skip
    for concurrency in levels:
        if args.client == "wrk":
            level = run_level_wrk(
                concurrency, duration=args.duration, warmup=args.warmup, **common
            )
            sample = asyncio.run(
                _sample(args.sample, common["base_url"], user_ids, query, headers_for)
            )
            level.engine_ms, level.fallbacks = sample.engine_ms, sample.fallbacks
            level.latencies_ms = sample.latencies_ms  # for the fallback share only
            level.stages = sample.stages
        else:
            level = asyncio.run(
                run_level(
                    concurrency, duration=args.duration, warmup=args.warmup, **common
                )
            )
        s = level.summary()
        results.append(s)
        lat, eng = s["latency_ms"], s["engine_ms"]
        print(
            f"{concurrency:>4} {s['requests']:>7} {s['rps']:>8} "
            f"{lat['p50'] or 0:>8.2f} {lat['p95'] or 0:>8.2f} {lat['p99'] or 0:>8.2f} "
            f"{eng['p50'] or 0:>10.2f} {s.get('latency_over_engine_p50', 0):>6} "
            f"{s['fallback_share'] or 0:>8} {s['errors'] or ''}"
            f"  | {s.get('server_timing_p50_ms', '')}",
            flush=True,
        )
    report = {
        "endpoint": PATH,
        "base_url": args.base_url,
        "query": query,
        "distinct_users": len(user_ids),
        "auth": "per-user keys" if args.per_user_keys else "one staff key",
        "duration_s": args.duration,
        "levels": results,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0 if all(not r["errors"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
