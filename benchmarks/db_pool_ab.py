"""A/B: HTTP latency with and without the PostgreSQL connection pool.

Starts a throw-away PostgreSQL (as ``make test`` does), migrates it, then serves
APEX with uvicorn twice per setting (``APEX_DB_POOL=0/1``, alternating) and
prints p50 / p95 of 200 sequential requests to ``/v1/platform/readiness`` (one
``SELECT 1``) and to a 404 that touches no database.

    .venv/bin/python benchmarks/db_pool_ab.py
"""

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scripts import servers  # noqa: E402  (throw-away PostgreSQL + free ports)


def percentiles(port: int, path: str, n: int = 200, warmup: int = 20) -> tuple:
    times = []
    for _ in range(n + warmup):
        started = time.perf_counter()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}").read()
        except urllib.error.HTTPError:
            pass  # the 404 floor
        times.append((time.perf_counter() - started) * 1e3)
    times = sorted(times[warmup:])
    return round(times[len(times) // 2], 2), round(times[int(len(times) * 0.95)], 2)


def main() -> None:
    with servers.postgres_server() as url, tempfile.TemporaryDirectory() as data_dir:
        env = dict(
            os.environ,
            DATABASE_URL=url,
            APEX_DATA_DIR=data_dir,
            APEX_LOG_LEVEL="ERROR",
            DJANGO_SETTINGS_MODULE="apex_site.settings.base",
        )
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        for pool in ("0", "1", "0", "1"):
            port = servers.free_port()
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "apex_site.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--lifespan",
                    "off",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=dict(env, APEX_DB_POOL=pool),
            )
            try:
                servers.wait_for_port(port, "uvicorn")
                ready = percentiles(port, "/v1/platform/readiness")
                floor = percentiles(port, "/v1/no-such-path")
            finally:
                server.terminate()
                server.wait()
            print(f"pool={pool} readiness p50/p95 ms={ready} 404 p50/p95 ms={floor}")
        print(f"load average: {os.getloadavg()[0]:.1f} (2 cores)")


if __name__ == "__main__":
    main()
