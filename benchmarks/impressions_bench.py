"""Impression logging: its cost on the request path, the flush throughput (issue 16).

Calls ``experiments.services.slate_record`` with a realistic 10-item slate
(and, separately, with 50 candidates' scores of 6 members) against a real
Redis, interleaved with the same call while logging is switched off
(``APEX_IMPRESSIONS_ENABLED=False``: the function returns at once), in one
run; prints p50/p90/p99 in microseconds. Then flushes what was queued into
PostgreSQL and reports slates per second.

Needs ``DATABASE_URL`` and ``REDIS_URL`` (e.g. the servers ``scripts/servers.py``
starts) with migrated tables:

    DJANGO_SETTINGS_MODULE=apex_site.settings.test DATABASE_URL=... REDIS_URL=... \\
        flock /tmp/apex-bench.lock python benchmarks/impressions_bench.py [--n 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apex_site.settings.test")

import django  # noqa: E402

django.setup()

from django.test import override_settings  # noqa: E402

from experiments import services  # noqa: E402
from experiments.buffer import LIST, get_impression_buffer  # noqa: E402
from experiments.models import Impression  # noqa: E402


def _slate(rng: np.random.Generator, candidates: bool) -> dict:
    ids = rng.choice(100_000, 50, replace=False).tolist()
    out = {
        "items": [
            {"movie_id": ids[k], "score": float(rng.random()), "propensity": 0.9}
            for k in range(10)
        ],
        "policy": {
            "weights_version": 4,
            "experiment": "bench",
            "variant": "b",
            "policy": "epsilon_greedy",
        },  # fmt: skip
    }
    if candidates:
        out["candidates"] = {
            "movie_ids": ids,
            "members": {f"m{j}": rng.random(50).round(5).tolist() for j in range(6)},
        }
    return out


def _stage(header: str, name: str) -> float:
    for part in header.split(","):
        key, _, dur = part.strip().partition(";dur=")
        if key == name:
            return float(dur)
    return 0.0


def http(n: int) -> dict:
    """``GET /v1/recommendations/user/<id>`` through the whole Django stack
    (middleware, DRF auth, throttle, serving, rendering; in-process client),
    logging on and off interleaved; the ``impression`` stage of the
    ``Server-Timing`` header and the request's ``total``."""
    from django.test import Client

    from accounts.tests.factories import UserFactory
    from catalog.tests.factories import GenreFactory, MovieFactory

    genre = GenreFactory(name=f"bench-{uuid.uuid4().hex[:6]}")
    movies = [MovieFactory(genres=[genre]) for _ in range(30)]
    user = UserFactory(is_staff=True)
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    url = f"/v1/recommendations/user/{user.pk}"
    out: dict[str, dict[str, list[float]]] = {
        k: {"impression": [], "total": []} for k in ("off", "on")
    }
    try:
        with override_settings(APEX_SERVER_TIMING="all", APEX_IMPRESSIONS_BATCH=10**9):
            for i in range(n + 20):
                for label in ("off", "on"):
                    with override_settings(APEX_IMPRESSIONS_ENABLED=label == "on"):
                        r = client.get(url)
                    assert r.status_code == 200, r.content[:200]
                    if i >= 20:  # warm-up
                        timing = r.headers.get("Server-Timing", "")
                        for stage in ("impression", "total"):
                            out[label][stage].append(_stage(timing, stage))
        body = r.json()
    finally:
        Impression.objects.filter(user_id=user.pk).delete()
        for m in movies:
            m.delete()
        genre.delete()
        user.delete()
    return {
        "requests_per_variant": n,
        "request_id_in_body": "request_id" in body,
        "items": len(body.get("items", [])),
        "ms": {
            label: {
                stage: {q: round(float(np.percentile(v, q)), 3) for q in (50, 90, 99)}
                for stage, v in stages.items()
            }
            for label, stages in out.items()
        },
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--http", type=int, default=0, help="requests per variant")
    args = p.parse_args()
    if args.http:
        get_impression_buffer().redis.delete(LIST)  # type: ignore[attr-defined]
        print(json.dumps(http(args.http), indent=2))
        return
    rng = np.random.default_rng(0)
    buffer = get_impression_buffer()
    buffer.redis.delete(LIST)  # type: ignore[attr-defined]
    Impression.objects.filter(experiment="bench").delete()
    timings: dict[str, list[float]] = {"off": [], "on": [], "on+candidates": []}
    with override_settings(APEX_IMPRESSIONS_BATCH=10**9):  # no kicks: flush below
        for _ in range(args.n):
            for label in ("off", "on", "on+candidates"):
                slate = _slate(rng, label == "on+candidates")
                enabled = label != "off"
                with override_settings(APEX_IMPRESSIONS_ENABLED=enabled):
                    t0 = time.perf_counter()
                    services.slate_record(
                        request_id=uuid.uuid4().hex, user_id=1,
                        surface="api:recommendations", **slate,
                    )  # fmt: skip
                    timings[label].append(time.perf_counter() - t0)
    queued = buffer.length()
    t0 = time.perf_counter()
    result = services.impressions_flush()
    flush_s = time.perf_counter() - t0
    report = {
        "machine": f"{platform.node()} {os.cpu_count()} cpus, load {os.getloadavg()}",
        "n_per_variant": args.n,
        "slate_record_us": {
            k: {q: round(float(np.percentile(v, q)) * 1e6, 1) for q in (50, 90, 99)}
            for k, v in timings.items()
        },
        "flush": {
            "queued": queued,
            "inserted": result.inserted,
            "seconds": round(flush_s, 2),
            "slates_per_s": round(result.inserted / flush_s, 1),
        },
    }
    Impression.objects.filter(experiment="bench").delete()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
