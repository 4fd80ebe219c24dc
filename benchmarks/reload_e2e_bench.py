"""Hot reload across serving processes, end to end (issue 6).

Against a running multi-worker server (``serving_stack_bench.py serve``):
publishes a copy of the current artifact version under a new name, keeps a
load of ``GET /v1/recommendations/user/{id}`` running from threads, asks ONE
worker to ``POST /v1/artifacts/reload {"version": <new>}`` with a staff key,
and watches ``meta.artifact_version`` of the load's answers (fresh
connections, which the kernel spreads over the workers): the last answer
from the old version after the reload request tells how long the other
workers took to follow. Prints that, the answers per version and the number
of failed requests (target: 0).

Needs the server's environment (``source /tmp/httpbench/env.sh``).

    python benchmarks/reload_e2e_bench.py --base-url http://127.0.0.1:PORT

``--online`` (issue 13, bounded, self-contained): how long an online KAN
snapshot and a fold of the online state into a new artifact version take to
reach running serving processes on tier 2 (ONNX Runtime, CPU) and tier 1
(PyTorch; on CPU here). See ``online_main``.

    flock /tmp/apex-bench.lock env APEX_TORCH_THREADS=1 OMP_NUM_THREADS=1 \
        python benchmarks/reload_e2e_bench.py --online --rounds 7 --folds 5 \
        --out /tmp/online-propagation.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def publish_copy() -> tuple[str, str]:
    """A new version with the current one's files; returns (old, new)."""
    from django.conf import settings

    from recommendations.serving.artifacts import ArtifactStore, read_manifest

    store = ArtifactStore(settings.APEX_ARTIFACTS_DIR)
    old = store.require_current()
    source = store.path(old)
    staging = store.begin_version()
    for path in source.rglob("*"):
        if path.is_file() and path.name != "manifest.json":
            target = staging / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    fields = read_manifest(source).model_dump(
        exclude={"version", "created", "files"}, mode="json"
    )
    fields["notes"] = {**fields.get("notes", {}), "copied_from": old}
    return old, store.commit(staging, fields).version


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="s of load after the reload request")  # fmt: skip
    args = parser.parse_args()
    import django

    django.setup()
    from serving_http_bench import own_api_keys, staff_api_key, users_with_history

    base = args.base_url.rstrip("/")
    users = users_with_history(50, 0)
    keys = own_api_keys(users)
    staff = {"Authorization": f"Api-Key {staff_api_key()}"}
    old, new = publish_copy()
    print(f"current {old}; published {new}")

    stop = threading.Event()
    outcomes: dict[str, int] = {}
    answers: list[tuple[float, str | None]] = []  # (time, version) of 200s
    lock = threading.Lock()

    def load(offset: int) -> None:
        i = offset
        while not stop.is_set():
            user = users[i % len(users)]
            i += 1
            status, body = _get(
                f"{base}/v1/recommendations/user/{user}?n=10",
                {"Authorization": f"Api-Key {keys[user]}"},
            )
            meta = body.get("meta", {})
            version = meta.get("artifact_version")
            key = (
                f"http_{status}" if status != 200
                else "fallback" if meta.get("fallback")
                else f"ok:{version}"
            )  # fmt: skip
            with lock:
                outcomes[key] = outcomes.get(key, 0) + 1
                if status == 200:
                    answers.append((time.perf_counter(), version))

    threads = [threading.Thread(target=load, args=(k * 7,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(3)
    started = time.perf_counter()
    request = urllib.request.Request(
        f"{base}/v1/artifacts/reload", data=json.dumps({"version": new}).encode(),
        headers={**staff, "Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=120) as response:
        answer = json.loads(response.read())
    answered = time.perf_counter() - started
    print(f"reload answered in {answered:.2f} s (scope {answer['scope']})")
    time.sleep(args.timeout)
    stop.set()
    for t in threads:
        t.join()
    old_after = [at - started for at, v in answers if v == old and at > started]
    last_old = max(old_after, default=0.0)
    tail = [v for at, v in answers if at - started > last_old]
    converged = last_old if tail and all(v == new for v in tail) else None
    failed = sum(v for k, v in outcomes.items() if not k.startswith("ok:"))
    took = f"{converged:.2f} s" if converged is not None else "never"
    print(
        f"last answer from {old}: {took} after the reload request "
        f"({len(old_after)} old answers after it, {len(tail)} new ones since)"
    )
    print(f"recommendation requests during the reload: {outcomes}; failed {failed}")
    return 0 if converged is not None and not failed else 1


# ------------------------------------------------------------ --online
ONLINE_HELP = """Propagation of online KAN snapshots and folds across tiers.

One throw-away Redis (the shared cache that carries the announcements, as in
production), a temporary artifacts folder with a pop + KAN bundle trained on
ML-100K's temporal leave-one-out training events (15 s of training: this
measures time, not accuracy), and two serving processes started from this script
(``--online-child``): each holds the product's ``ServingRuntime`` with the
production loader on its tier (``APEX_SERVING_TIER`` 2 and 1) and polls the
shared generation every ``APEX_RELOAD_POLL_SECONDS`` (``--poll``), calling
``get()`` every 10 ms like a process answering 100 requests/s. A child
prints a line whenever the KAN member it serves changes, with the member's
scores for a fixed history.

This process is the online learner: ``recommendations.online``'s learner
state over the bundle's KAN, fed micro-batches of 100 held-out ML-100K events
(each user's last event, in time order). Per round: ``observe`` (timed:
the learner's update throughput), then the product's ``_publish`` (snapshot
+ ONNX export + announce; timed), then the wall time until each child serves
scores equal to the snapshot's (ONNX on tier 2, PyTorch on tier 1), and
the part of it the process spent loading and swapping (from the poll that
saw the announcement to the new member). Each round starts after a random
wait in [0, poll) so that it lands at a random point of the poll cycle. Fold
rounds: learn + publish, wait for the children, then ``online_fold``
(timed), then the time until each child serves the new artifact version with
the folded weights. The guard is off here (it needs the platform's log);
every update is published.
"""


def _online_child(tier: str) -> int:
    import django

    django.setup()
    import numpy as np

    from recommendations.serving.runtime import ServingRuntime

    runtime = ServingRuntime()
    history = None
    last = None
    follow_started = None  # when get() handed a follow to the background
    print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
    while True:
        bundle = runtime.get()
        if follow_started is None and runtime._following:
            follow_started = time.time()
        member = bundle.payload.ensemble.members["kan"]
        if member is not last:
            if history is None:
                history = [int(i) for i in np.asarray(member.items.ids)[:20]]
            scores = np.asarray(member.score_ids(history), dtype=np.float64)
            print(
                json.dumps({
                    "t": time.time(), "tier": tier, "version": bundle.version,
                    "tier_served": bundle.tier.tier,
                    "follow_s": None if follow_started is None
                    else round(time.time() - follow_started, 3),
                    "scores": [round(float(x), 6) for x in scores[:50]],
                }),
                flush=True,
            )  # fmt: skip
            last = member
            follow_started = None
        time.sleep(0.01)


def _bench_bundle(root: Path, seed: int, dataset: str) -> tuple[Any, Any]:
    """A pop + KAN bundle on ML-100K's loo training events; returns the
    full data and the stream of held-out events."""
    import numpy as np

    from recommendations.engine.data.loading import load_data
    from recommendations.engine.data.splits import leave_one_out
    from recommendations.engine.models.ensemble import Ensemble
    from recommendations.engine.online.events import stream_events
    from recommendations.engine.pipeline.items import ItemMetadata
    from recommendations.engine.serving.build import build_bundle
    from recommendations.engine.training.trainer import Trainer
    from recommendations.serving.artifacts import ArtifactStore

    if dataset == "ml-100k":
        data = load_data(str(ROOT.parent / "shared/data/ml-100k"))
    else:  # a light run: synthetic, ML-100K's shape at a tenth of the events
        from recommendations.engine.data.interactions import Interactions
        from recommendations.engine.data.synthetic import generate

        made = generate(users=300, items=1000, interactions=10_000, seed=seed)
        data = Interactions.from_frame(
            made.ratings,
            item_features=made.movies.set_index("item_id")[["title", "year", "genres"]],
            name="synthetic",
        )
    split = leave_one_out(data)
    ensemble = Ensemble(members=("pop", "kan"), samples=10, time_budget_s=15.0)
    ensemble.fit(split.train, split.validation_task(), Trainer(seed=seed, max_epochs=1))
    ensemble.set_weights({"pop": 0.2, "kan": 0.8})
    store = ArtifactStore(root)
    staging = store.begin_version("bench-v1")
    fields = build_bundle(
        staging, train=split.train, ensemble=ensemble,
        metadata=ItemMetadata.from_interactions(split.train), profile="quick",
        seed=seed,
    )  # fmt: skip
    store.commit(staging, fields)
    store.set_current("bench-v1")
    ptr = data.user_ptr
    last = ptr[1:][np.diff(ptr) >= 2] - 1
    mask = np.zeros(data.n_events, dtype=bool)
    mask[last] = True
    return data, stream_events(data, mask)


class _Child:
    def __init__(self, tier: str, env: dict[str, str]) -> None:
        import queue
        import subprocess

        self.tier = tier
        self.lines: queue.Queue = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--online-child", tier],
            env={**env, "APEX_SERVING_TIER": tier},
            stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                continue

    def wait_for(self, match, timeout: float) -> dict | None:
        import queue

        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = self.lines.get(timeout=max(deadline - time.time(), 0.01))
            except queue.Empty:
                return None
            if match(line):
                return line
        return None


def _stats(values: list[float]) -> dict[str, float | int]:
    import numpy as np

    if not values:
        return {"n": 0}
    a = np.asarray(values)
    return {
        "n": len(a), "median": round(float(np.median(a)), 3),
        "min": round(float(a.min()), 3), "max": round(float(a.max()), 3),
    }  # fmt: skip


def online_main(argv: list[str]) -> int:
    import tempfile

    parser = argparse.ArgumentParser(
        description=ONLINE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--online", action="store_true")
    parser.add_argument("--rounds", type=int, default=7, help="snapshot rounds")
    parser.add_argument("--folds", type=int, default=5, help="fold rounds")
    parser.add_argument("--poll", type=int, default=2,
                        help="serving APEX_RELOAD_POLL_SECONDS")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="s to wait for a process to follow")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", choices=("ml-100k", "synthetic"), default="ml-100k")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "scripts"))
    import servers

    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="apex-online-") as tmp,
        servers.redis_server() as redis_url,
    ):
        root = Path(tmp) / "artifacts"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "apex_site.settings.base",
            "REDIS_URL": redis_url,
            "APEX_ARTIFACTS_DIR": str(root),
            # no tables: serving reads the active ensemble weights from the
            # database and, failing, keeps the bundle's own (what this needs)
            "DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3",
            "APEX_RELOAD_POLL_SECONDS": str(args.poll),
            "APEX_TORCH_THREADS": os.environ.get("APEX_TORCH_THREADS", "1"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            "PYTHONPATH": str(ROOT),
        }
        os.environ.update(env)
        import django

        django.setup()
        import numpy as np

        from recommendations import online, online_fold
        from recommendations.engine.models.base import Recommender
        from recommendations.engine.online import OnlineLearner
        from recommendations.engine.onnx.scorer import OnnxScorer

        t0 = time.perf_counter()
        _data, stream = _bench_bundle(root, args.seed, args.data)
        build_s = time.perf_counter() - t0
        print(f"bundle built in {build_s:.0f} s; {len(stream)} stream events")
        model = Recommender.load(root / "bench-v1" / "ensemble" / "members" / "kan")
        state = online._State("bench-v1", OnlineLearner(model), 0)
        online._state = state  # this process is the learner (the fold re-keys it)

        children = {tier: _Child(tier, env) for tier in ("2", "1")}
        for child in children.values():
            if child.wait_for(lambda line: line.get("ready"), 120) is None:
                raise SystemExit(f"tier {child.tier} process did not start")
        for child in children.values():  # its first bundle
            if child.wait_for(lambda line: "version" in line, 120) is None:
                raise SystemExit(f"tier {child.tier} process served nothing")

        def expected(folder: Path) -> dict[str, np.ndarray]:
            ids = [int(i) for i in np.asarray(model.items.ids)[:20]]
            return {
                "2": OnnxScorer(folder, precision="fp32").score_ids(ids)[:50],
                "1": Recommender.load(folder).score_ids(ids)[:50],
            }

        def follow(version: str, want: dict[str, np.ndarray], since: float) -> dict:
            out = {}
            for tier, child in children.items():
                line = child.wait_for(
                    lambda line, t=tier: (
                        line.get("version") == version
                        and np.allclose(line["scores"], want[t], atol=1e-4)
                    ),
                    args.timeout,
                )
                out[tier] = None if line is None else round(line["t"] - since, 3)
                if line is not None:
                    served_tiers[tier] = line["tier_served"]
                    follow_costs[tier].append(line["follow_s"])
            return out

        served_tiers: dict[str, int] = {}
        follow_costs: dict[str, list] = {"2": [], "1": []}
        rng = np.random.default_rng(args.seed)
        batches = [stream[i : i + 100] for i in range(0, len(stream), 100)]
        rounds: list[dict] = []
        folds: list[dict] = []
        b = 0
        for r in range(args.rounds + args.folds):
            batch = batches[b % len(batches)]
            b += 1
            # a random phase against the processes' poll timers (else every
            # round would land at the same point of their poll cycle)
            time.sleep(float(rng.uniform(0, args.poll)))
            state = online._state  # re-keyed by each fold
            t = time.perf_counter()
            report = state.learner.observe(batch)
            observe_s = time.perf_counter() - t
            state.events += report.events
            t = time.perf_counter()
            seq = online._publish(online._state)
            announced = time.time()
            publish_s = time.perf_counter() - t
            version = online._state.version
            folder = online.latest_snapshot(version)[1]
            lag = follow(version, expected(folder), announced)
            row = {
                "round": r, "events": report.events,
                "observe_s": round(observe_s, 3),
                "events_per_s": round(report.events / observe_s, 1),
                "publish_s": round(publish_s, 3), "seq": seq,
                "announce_to_served_s": lag,
                "snapshot_to_served_s": {
                    k: None if v is None else round(v + publish_s, 3)
                    for k, v in lag.items()
                },
            }  # fmt: skip
            rounds.append(row)
            print(json.dumps(row))
            if r < args.rounds:
                continue
            t = time.perf_counter()
            result = online_fold.online_fold()
            activated = time.time()
            fold_s = time.perf_counter() - t
            new = result.artifact_version
            want = expected(root / new / "onnx" / "kan")
            want["1"] = Recommender.load(
                root / new / "ensemble" / "members" / "kan"
            ).score_ids([int(i) for i in np.asarray(model.items.ids)[:20]])[:50]
            lag = follow(new, want, activated)
            fold_row = {
                "round": r, "version": new, "fold_s": round(fold_s, 3),
                "events": result.events, "activated": result.activated,
                "activate_to_served_s": lag,
                "fold_start_to_served_s": {
                    k: None if v is None else round(v + fold_s, 3)
                    for k, v in lag.items()
                },
            }  # fmt: skip
            folds.append(fold_row)
            print(json.dumps(fold_row))
        for child in children.values():
            servers.process_stop(child.proc)

    def col(rows: list[dict], key: str, tier: str | None = None) -> list[float]:
        vals = [r[key] if tier is None else r[key][tier] for r in rows]
        return [v for v in vals if v is not None]

    summary = {
        "started_at": started_at,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "poll_s": args.poll,
        "tier_asked_to_tier_served": served_tiers,
        "data": args.data,
        "bundle_build_s": round(build_s, 1),
        "learner_events_per_s": _stats(col(rounds, "events_per_s")),
        "publish_s": _stats(col(rounds, "publish_s")),
        **{
            f"snapshot_announce_to_served_tier{t}_s": _stats(
                col(rounds, "announce_to_served_s", t)
            )
            for t in ("2", "1")
        },
        **{
            f"snapshot_to_served_tier{t}_s": _stats(
                col(rounds, "snapshot_to_served_s", t)
            )
            for t in ("2", "1")
        },
        "fold_s": _stats(col(folds, "fold_s")),
        **{
            f"follow_cost_tier{t}_s": _stats([v for v in follow_costs[t] if v])
            for t in ("2", "1")
        },
        **{
            f"fold_activate_to_served_tier{t}_s": _stats(
                col(folds, "activate_to_served_s", t)
            )
            for t in ("2", "1")
        },
        **{
            f"fold_start_to_served_tier{t}_s": _stats(
                col(folds, "fold_start_to_served_s", t)
            )
            for t in ("2", "1")
        },
        "missed": sum(
            v is None
            for r in rounds + folds
            for k in ("announce_to_served_s", "activate_to_served_s")
            for v in r.get(k, {}).values()
        ),
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "rounds": rounds,
                                        "folds": folds}, indent=2))  # fmt: skip
    return 0 if summary["missed"] == 0 else 1


if __name__ == "__main__":
    if "--online-child" in sys.argv:
        raise SystemExit(_online_child(sys.argv[sys.argv.index("--online-child") + 1]))
    if "--online" in sys.argv:
        raise SystemExit(online_main(sys.argv[1:]))
    raise SystemExit(main())
