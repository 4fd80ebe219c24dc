"""The analytics numbers (issue 15): ``python benchmarks/analytics_bench.py <what>``.

- ``noise``: 10,000 releases of one fixed query (a count of 1,234 for one
  public key, epsilon 0.5, 20 records per user: scale 40) through the very
  OpenDP measurement the service builds, outside the ledger (a test-only
  budget: the ledger would answer the repeat from its cache). The noise
  (release - true count) is tested against the discrete Laplace of the
  stated scale: chi-square goodness of fit over integer bins (tails merged
  so every bin expects >= 5), and the sample's variance against the exact
  one, ``2q / (1 - q)^2`` with ``q = exp(-1/scale)``.
- ``middleware``: the SLO middleware's cost per request, p50 of the same
  request through two Django handlers, one with ``SloMiddleware`` and one
  without, interleaved in one run (prometheus-client in multiprocess mode,
  as under gunicorn; no Redis on the request path by design).
- ``data``: on a throw-away PostgreSQL + Redis: load ML-100K (or
  ml-latest-small) into the log, time private releases (each a new query;
  then its cached repeat), train a fast ensemble (itemknn + EASE, quick
  profile) and time ``audit_fairness`` (each member and the ensemble); then
  serve ``--served`` user lists through the real serving path
  (``recommendations.services.user_feed``: engine, impression log) to
  random users, flush the log, and time the served audit
  (``audit_fairness --served``) on those slates.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def noise(releases: int) -> None:
    import numpy as np
    import scipy.stats

    from analytics import privacy

    epsilon, bound, true = 0.5, 20, 1234
    measurement, scale = privacy.count_measurement(
        ["the-key"], epsilon=epsilon, max_contributions=bound
    )
    data = ["the-key"] * true
    started = time.perf_counter()
    samples = np.array([measurement(data)[0] - true for _ in range(releases)])
    seconds = time.perf_counter() - started
    # bins: every integer with expected count >= 5, the two tails merged
    k_max = 0
    while releases * privacy.discrete_laplace_pmf(k_max + 1, scale) >= 5:
        k_max += 1
    ks = np.arange(-k_max, k_max + 1)
    expected = releases * privacy.discrete_laplace_pmf(ks, scale)
    tail = (releases - expected.sum()) / 2
    observed = np.array([(samples == k).sum() for k in ks])
    observed = np.concatenate(
        [[(samples < -k_max).sum()], observed, [(samples > k_max).sum()]]
    )
    expected = np.concatenate([[tail], expected, [tail]])
    chi2, p = scipy.stats.chisquare(observed, expected)
    q = np.exp(-1 / scale)
    print(f"releases: {releases}, epsilon {epsilon}, bound {bound}, scale {scale:g}")
    print(
        f"chi-square: {chi2:.1f} on {len(observed) - 1} degrees of freedom, p = {p:.3f}"
    )
    print(
        f"variance: sample {samples.var(ddof=1):.1f}, "
        f"exact {2 * q / (1 - q) ** 2:.1f}; "
        f"mean {samples.mean():+.2f}; mean |noise| {np.abs(samples).mean():.2f}"
    )
    print(f"one release of one key: {1e6 * seconds / releases:.1f} us")


def middleware(requests: int, path: str) -> None:
    with tempfile.TemporaryDirectory(prefix="apex-prom-") as folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apex_site.settings.base")
        os.environ["APEX_THROTTLE_ANON"] = "100000000/min"  # measure the view, not 429s
        import django

        django.setup()
        from django.conf import settings
        from django.core.handlers.wsgi import WSGIHandler
        from django.test import RequestFactory, override_settings

        with_slo = WSGIHandler()
        without = [m for m in settings.MIDDLEWARE if m != "analytics.slo.SloMiddleware"]
        assert len(without) == len(settings.MIDDLEWARE) - 1
        with override_settings(MIDDLEWARE=without):
            without_slo = WSGIHandler()
        environ = RequestFactory().get(path, HTTP_HOST="localhost").environ

        def once(handler) -> float:
            started = time.perf_counter()
            response = handler(dict(environ), lambda *a, **k: None)
            b"".join(response)
            response.close()
            return time.perf_counter() - started

        status: list[str] = []
        with_slo(dict(environ), lambda s, h: status.append(s))
        assert status[0].startswith("200"), status
        for _ in range(200):  # warm up both
            once(with_slo), once(without_slo)
        a, b = [], []
        for i in range(requests):
            if i % 2:
                a.append(once(with_slo)), b.append(once(without_slo))
            else:
                b.append(once(without_slo)), a.append(once(with_slo))
        p50_with, p50_without = statistics.median(a) * 1e3, statistics.median(b) * 1e3
        print(f"{path} ({status[0]}), {requests} requests each, interleaved")
        print(f"p50 with SloMiddleware:    {p50_with:.3f} ms")
        print(f"p50 without:               {p50_without:.3f} ms")
        print(f"cost (difference of p50s): {p50_with - p50_without:.3f} ms")
        diffs = sorted(x - y for x, y in zip(a, b, strict=True))
        print(f"median of paired differences: {1e3 * diffs[len(diffs) // 2]:.3f} ms")


def data(dataset: str, path: str, max_users: int, inner: bool, served: int) -> None:
    if not inner:
        from scripts.servers import postgres_server, redis_server

        with postgres_server() as database, redis_server() as redis:
            env = {
                **os.environ,
                "DATABASE_URL": database,
                "REDIS_URL": redis,
                "DJANGO_SETTINGS_MODULE": "apex_site.settings.base",
                "DJANGO_SECRET_KEY": "analytics-bench",
                "APEX_CELERY_EAGER": "1",
                "APEX_ARTIFACTS_DIR": tempfile.mkdtemp(prefix="apex-bench-art-"),
                "APEX_TORCH_THREADS": "1",
                "OMP_NUM_THREADS": "1",
            }
            subprocess.run(
                [sys.executable, __file__, "data", "--dataset", dataset, "--path", path,
                 "--max-users", str(max_users), "--served", str(served), "--inner"],
                env=env, cwd=ROOT, check=True,
            )  # fmt: skip
        return
    import django

    django.setup()
    from django.core.management import call_command

    from analytics import services
    from analytics.audits import evaluate_artifact
    from recommendations import services as rec_services

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    call_command("load_movielens", dataset=dataset, path=path, verbosity=0)
    print(f"{dataset}: loaded in {time.perf_counter() - t0:.0f} s")
    for release, dimension in [
        ("genre_counts", "age_band"),
        ("genre_counts", "occupation"),
        ("top_movies", "gender"),
        ("top_movies", "occupation"),
    ]:
        t0 = time.perf_counter()
        answer = services.dp_release(release=release, dimension=dimension, epsilon=0.25)
        fresh = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = services.dp_release(release=release, dimension=dimension, epsilon=0.25)
        cached = time.perf_counter() - t0
        assert again.cached and not answer.cached
        print(
            f"release {release} x {dimension}: {fresh:.2f} s "
            f"(records kept {answer.release.result['records_kept']}, dropped "
            f"{answer.release.result['records_dropped']}); cached repeat "
            f"{cached * 1e3:.1f} ms"
        )
    t0 = time.perf_counter()
    trained = rec_services.model_train(
        dataset="db", members=("itemknn", "ease"), profile="quick", seed=0
    )
    print(f"train itemknn+ease: {time.perf_counter() - t0:.0f} s; {trained.metrics}")
    audit, evaluation = evaluate_artifact(max_users=max_users)
    print(
        f"audit_fairness: {audit.seconds:.1f} s for {audit.users} held-out users "
        f"(members: {', '.join(evaluation.results)}); gini "
        f"{audit.metrics['exposure_gini']:.3f}, "
        f"coverage {audit.metrics['coverage']:.3f}"
    )
    t0 = time.perf_counter()
    audit2, _ = evaluate_artifact(max_users=max_users, members=False)
    print(f"audit_fairness --no-members: {time.perf_counter() - t0:.1f} s")
    for dimension, result in audit.metrics["by_group"].items():
        gap = result["gaps"].get("ndcg@10")
        print(f"  ndcg@10 gap by {dimension}: {gap}")
    if served:
        served_audit(served)


def served_audit(lists: int) -> None:
    import random

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from analytics.audits import audit_served
    from experiments import selectors as experiment_selectors
    from experiments import services as experiment_services
    from recommendations import services as rec_services

    since = timezone.now()
    user_ids = list(get_user_model().objects.values_list("pk", flat=True))
    rng = random.Random(0)
    t0 = time.perf_counter()
    for _ in range(lists):
        rec_services.user_feed(
            user_id=rng.choice(user_ids), surface="api:recommendations"
        )
    serve_s = time.perf_counter() - t0
    experiment_services.impressions_flush()  # (full batches flushed already)
    logged = experiment_selectors.impressions(since=since).count()
    print(
        f"served {lists} lists in {serve_s:.1f} s ({1e3 * serve_s / lists:.1f} ms "
        f"each, one process, slates logged included); {logged} slates in the log"
    )
    for repeat in range(3):
        audit = audit_served(since=since, until=timezone.now(), seed=repeat)
        m = audit.metrics
        print(
            f"audit_fairness --served: {audit.seconds:.2f} s for "
            f"{m['period']['slates_audited']} slates of {audit.users} users; gini "
            f"{m['exposure_gini']:.3f}, coverage {m['coverage']:.3f}, long tail "
            f"{m['long_tail_share']:.3f}"
        )


def release_core(path: str, repeats: int) -> None:
    """The mechanism's part of a release on ML-100K's own files (no database):
    bounding + OpenDP counting + noise, as ``services.dp_release`` runs it."""
    import pandas as pd

    from analytics import privacy

    folder = Path(path)
    ratings = pd.read_csv(folder / "u.data", sep="\t", names=["u", "m", "r", "t"])
    users = pd.read_csv(
        folder / "u.user", sep="|", names=["u", "age", "gender", "occ", "zip"]
    )
    genre_names = [
        "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
        "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",
        "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
    ]  # fmt: skip
    items = pd.read_csv(
        folder / "u.item", sep="|", encoding="latin-1", header=None
    ).iloc[:, [0, *range(5, 24)]]
    genres = {
        int(row[0]): [g for g, flag in zip(genre_names, row[1:], strict=True) if flag]
        for row in items.itertuples(index=False)
    }
    occupation = dict(zip(users["u"], users["occ"], strict=True))
    pairs = ratings[["u", "m"]].drop_duplicates().itertuples(index=False)
    pairs = [(int(u), int(m)) for u, m in pairs]
    occupations = sorted(set(occupation.values())) + ["unknown"]
    cases = {
        "genre_counts x occupation": (
            [f"{o}|{g}" for o in occupations for g in genre_names],
            [(u, f"{occupation[u]}|{g}") for u, m in pairs for g in genres[m]],
        ),
        "top_movies x occupation": (
            [f"{o}|{m}" for o in occupations for m in sorted(genres)],
            [(u, f"{occupation[u]}|{m}") for u, m in pairs],
        ),
    }
    for name, (keys, records) in cases.items():
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            out = privacy.noisy_counts(
                records, keys=keys, epsilon=0.5, max_contributions=20
            )
            times.append(time.perf_counter() - started)
        print(
            f"{name}: {len(keys)} keys, {len(records)} records "
            f"({out.records_dropped} dropped by the bound of 20): median "
            f"{statistics.median(times):.3f} s over {repeats}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("noise")
    p.add_argument("--releases", type=int, default=10_000)
    p = sub.add_parser("middleware")
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--path", default="/v1/billing/plans")
    p = sub.add_parser("release-core")
    p.add_argument("--path", default=str(ROOT.parent / "shared/data/ml-100k"))
    p.add_argument("--repeats", type=int, default=5)
    p = sub.add_parser("data")
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--path", default=str(ROOT.parent / "shared/data/ml-100k"))
    p.add_argument("--max-users", type=int, default=2000)
    p.add_argument("--served", type=int, default=2000, help="lists to serve")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.what == "noise":
        noise(args.releases)
    elif args.what == "middleware":
        middleware(args.requests, args.path)
    elif args.what == "release-core":
        release_core(args.path, args.repeats)
    else:
        data(args.dataset, args.path, args.max_users, args.inner, args.served)


if __name__ == "__main__":
    main()
