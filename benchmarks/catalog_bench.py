"""Catalog benchmarks: data loads into PostgreSQL and search latency over HTTP.

Starts a throw-away PostgreSQL (``scripts/servers.py``, as for the tests), then

1. loads ML-100K + the TMDB CSVs, and ml-latest-small + the TMDB CSVs, each
   ``--runs`` times into a fresh database (wall time of the real
   ``manage.py load_movielens`` / ``load_tmdb`` processes, start-up included);
2. on the ml-latest-small catalog (9,742 movies) builds the semantic index,
   serves the app with uvicorn on 127.0.0.1 and times ``GET /v1/search`` and
   ``GET /v1/search/ai`` from a keep-alive client (p50 / p95 / mean). Every
   semantic query is distinct, so the query-embedding cache never answers.

    .venv/bin/python benchmarks/catalog_bench.py --data ../shared/data --runs 3

Prints a summary table at the end; nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scripts.servers import (  # noqa: E402
    free_port,
    pg_bin,
    postgres_server,
    wait_for_port,
)

PYTHON = sys.executable

KEYWORD_QUERIES = [
    "star", "star wa", "toy story", "matrix", "godfather", "lord of the rings",
    "harry pot", "alien", "batman", "love", "war", "christmas", "pixar", "spielberg",
    "tom hanks", "heist", "vampire", "zombie", "pirates", "space", "jurassic", "the",
    "dark knight", "indiana", "terminator", "bond", "shrek", "titan", "inception",
    "fight club", "robot", "dog", "high school", "mafia", "western", "samurai",
]  # fmt: skip
SUBJECTS = [
    "space adventure with robots", "animated movie about toys", "a heist that goes "
    "wrong", "romance on a sinking ship", "mafia family crime saga", "dinosaurs in a "
    "theme park", "time travel comedy", "superhero origin story", "haunted house "
    "horror", "a boxer's comeback", "wizard school", "zombie apocalypse survival",
    "courtroom drama", "world war two soldiers", "a talking animal", "serial killer "
    "detective", "high school prom", "pirates and treasure", "a road trip with "
    "friends", "alien invasion of earth", "a musical about dreams", "a spy on a "
    "secret mission", "a shark attacks a beach", "a dystopian future", "a family "
    "christmas", "cowboys in the old west", "a martial arts master", "a submarine "
    "crew", "a rock band on tour", "artificial intelligence falls in love",
]  # fmt: skip
MODIFIERS = ["", "funny ", "dark ", "classic ", "90s ", "french ", "sad ", "epic "]


def semantic_queries(n: int) -> list[str]:
    out = [f"{m}{s}" for m in MODIFIERS for s in SUBJECTS]
    return out[:n]


def log(message: str) -> None:
    print(f"==> {message}", flush=True)


def manage(env: dict, *args: str, capture: bool = True) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=capture,
        text=True,
    )
    return time.perf_counter() - started, (result.stdout or "")


def fresh_db(base_url: str, name: str) -> str:
    parsed = urllib.parse.urlparse(base_url)
    subprocess.run(
        [pg_bin("createdb"), "-h", parsed.hostname, "-p", str(parsed.port),
         "-U", "apex", name],
        check=True,
    )  # fmt: skip
    return parsed._replace(path=f"/{name}").geturl()


def load_run(base_url: str, name: str, data: Path, dataset: str, data_dir: Path):
    env = dict(os.environ, DATABASE_URL=fresh_db(base_url, name))
    env["APEX_DATA_DIR"] = str(data_dir)
    env["APEX_LOG_LEVEL"] = "WARNING"
    manage(env, "migrate", "-v", "0")
    folder = data / dataset
    t_ml, out_ml = manage(
        env, "load_movielens", "--dataset", dataset, "--path", str(folder),
        "--source", "path",
    )  # fmt: skip
    t_tmdb, out_tmdb = manage(
        env, "load_tmdb",
        "--movies", str(data / "tmdb" / "tmdb_5000_movies.csv"),
        "--credits", str(data / "tmdb" / "tmdb_10866_cast_director.csv"),
    )  # fmt: skip
    return env, t_ml, t_tmdb, out_ml + out_tmdb


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def time_requests(port: int, path: str, queries: list[str], limit: int = 20):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    timings, sizes = [], []
    for q in queries:
        url = f"{path}?{urllib.parse.urlencode({'q': q, 'limit': limit})}"
        started = time.perf_counter()
        conn.request("GET", url, headers={"Accept": "application/json"})
        response = conn.getresponse()
        body = response.read()
        timings.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise SystemExit(f"{url}: HTTP {response.status} {body[:200]!r}")
        sizes.append(len(json.loads(body).get("results", [])))
    conn.close()
    return timings, sizes


def time_plain(port: int, path: str, n: int, status: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    timings = []
    for _ in range(n):
        started = time.perf_counter()
        conn.request("GET", path, headers={"Accept": "application/json"})
        response = conn.getresponse()
        response.read()
        timings.append((time.perf_counter() - started) * 1000)
        if response.status != status:
            raise SystemExit(f"{path}: HTTP {response.status}, expected {status}")
    conn.close()
    return timings


@contextlib.contextmanager
def serve(env: dict):
    port = free_port()
    env = dict(env, APEX_THROTTLE_ANON="1000000/min", APEX_LOG_LEVEL="ERROR")
    proc = subprocess.Popen(
        [PYTHON, "-m", "uvicorn", "apex_site.asgi:application", "--host",
         "127.0.0.1", "--port", str(port), "--lifespan", "off", "--no-access-log"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        wait_for_port(port, "uvicorn", timeout=60)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def search_benchmark(env: dict, n: int, lines: list[str]) -> None:
    with serve(env) as port:
        keyword = (KEYWORD_QUERIES * (n // len(KEYWORD_QUERIES) + 1))[:n]
        time_requests(port, "/v1/search", KEYWORD_QUERIES[:10])  # warm-up
        time_requests(port, "/v1/search/ai", ["warm up the model"])
        # Floors: the same stack without search, so search's own cost can be
        # told from the server's and the database round trips'.
        for path, status in (
            ("/v1/nothing-here", 404),  # JSON 404, no database
            ("/v1/platform/readiness", 200),  # SELECT 1
            ("/v1/catalog/movies", 200),  # one indexed page + count
        ):
            floor = time_plain(port, path, min(n, 100), status)
            lines.append(
                f"[search] floor GET {path}: p50 {percentile(floor, 50):.1f} ms, "
                f"p95 {percentile(floor, 95):.1f} ms"
            )
        for path, queries in (
            ("/v1/search", keyword),
            ("/v1/search/ai", semantic_queries(n)),
        ):
            log(f"timing {len(queries)} requests to {path}")
            timings, sizes = time_requests(port, path, queries)
            lines.append(
                f"[search] {path}: n={len(timings)} p50 "
                f"{percentile(timings, 50):.1f} ms, p95 "
                f"{percentile(timings, 95):.1f} ms, mean "
                f"{statistics.mean(timings):.1f} ms, mean hits "
                f"{statistics.mean(sizes):.1f}"
            )
    load = os.getloadavg()
    lines.append(f"[search] load average during the run: {load[0]:.1f} (2 cores)")


def summary(label: str, values: list[float]) -> str:
    return (
        f"{label}: median {statistics.median(values):.2f}s "
        f"(runs: {', '.join(f'{v:.2f}' for v in values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument(
        "--search-only",
        metavar="DATABASE_URL",
        help="skip the loads; time search against this already loaded database "
        "(its APEX_DATA_DIR, with a built index, from --data-dir)",
    )
    parser.add_argument("--data-dir", type=Path, help="APEX_DATA_DIR for --search-only")
    args = parser.parse_args()
    data = args.data.resolve()
    lines: list[str] = []
    if args.search_only:
        env = dict(os.environ, DATABASE_URL=args.search_only)
        env["APEX_DATA_DIR"] = str(args.data_dir)
        search_benchmark(env, args.requests, lines)
        print("\n".join(["", "catalog benchmark results", *lines]), flush=True)
        return
    with postgres_server() as base_url, tempfile.TemporaryDirectory() as tmp:
        env = None
        for dataset in ("ml-100k", "ml-latest-small"):
            totals, ml_times, tmdb_times = [], [], []
            for run in range(args.runs):
                name = f"bench_{dataset.replace('-', '_')}_{run}"
                log(f"{dataset}: load run {run + 1}/{args.runs}")
                env, t_ml, t_tmdb, output = load_run(
                    base_url, name, data, dataset, Path(tmp) / name
                )
                ml_times.append(t_ml)
                tmdb_times.append(t_tmdb)
                totals.append(t_ml + t_tmdb)
            lines.append(f"[{dataset}] " + summary("load_movielens", ml_times))
            lines.append(f"[{dataset}] " + summary("load_tmdb (both CSVs)", tmdb_times))
            lines.append(f"[{dataset}] " + summary("total", totals))
            for line in output.splitlines():
                if re.search(r"matched|catalog:|ratings: read|movies: read", line):
                    lines.append(f"[{dataset}]   {line.strip()}")
        if not args.skip_search and env is not None:
            log("building the semantic index over ml-latest-small")
            t_index, out = manage(env, "build_search_index")
            lines.append(
                f"[search] build_search_index: {t_index:.1f}s ({out.splitlines()[-1]})"
            )
            search_benchmark(env, args.requests, lines)
    print("\n".join(["", "catalog benchmark results", *lines]), flush=True)


if __name__ == "__main__":
    main()
