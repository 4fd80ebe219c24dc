"""Served-list fidelity, latency, cold boot and memory of the serving tiers.

ML-100K temporal leave-one-out: the ensemble is trained on the split (or
loaded with ``--ensemble DIR``, saved by ``python -m recommendations.engine
debias --data /work/shared/data/ml-100k --save-model DIR``, same split), a
serving bundle is built in a temporary folder (item metadata from the
interactions: titles, years, genres), and every test user is replayed
through each tier's full served pipeline (``ServingEngine.recommend``:
retrieval + ranking + reranking, history = train + validation items, n = 10,
diversity 0, seen items excluded). HR@10 / NDCG@10 of the served top 10 (a
miss when the test item is not in the list) are compared with the ensemble's
offline full-ranking NDCG@10 (``evaluator.evaluate``), both with the
training users' own embeddings (the offline protocol) and with every user
folded in from the history alone (what serving can do). To see which stage
loses quality, the script measures the retrieval recall (test item among the
candidates, per source) and the served NDCG when reranking boosts are
switched off.

Each tier is also loaded in a fresh subprocess for cold boot (interpreter
start -> first served recommendation) and peak RSS.

    python benchmarks/serving_fidelity_bench.py [--ensemble DIR] [--tiers 1,2,3]
    python benchmarks/serving_fidelity_bench.py --quick-check   # synthetic, ~1 min

Writes Markdown to stdout and ``--out`` (default /tmp/bench_serving_fidelity.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("APEX_TORCH_THREADS", "1")

from recommendations.engine.data.interactions import History  # noqa: E402
from recommendations.engine.data.loading import load_data  # noqa: E402
from recommendations.engine.data.splits import EvalTask, make_split  # noqa: E402
from recommendations.engine.evaluation.evaluator import evaluate  # noqa: E402
from recommendations.engine.pipeline import ItemMetadata, RerankConfig  # noqa: E402
from recommendations.engine.pipeline.reranking import Reranker  # noqa: E402
from recommendations.engine.serving import ServingEngine  # noqa: E402
from recommendations.engine.serving.build import build_bundle  # noqa: E402

QUICK_MEMBERS = ("itemknn", "sasrec", "lightgcn")
QUICK_OVERRIDES = {
    "sasrec": {"hidden": 16, "max_len": 20, "blocks": 1, "batch_size": 64},
    "lightgcn": {"dim": 16, "layers": 2, "batch_size": 512},
}

BOOT_CODE = """
import json, sys, time
t0 = time.perf_counter()
def peak_rss_mb():  # VmHWM: this process image's peak (ru_maxrss survives exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
from recommendations.engine.serving import ServingEngine
engine = ServingEngine.load(sys.argv[1], int(sys.argv[2]), device="cpu")
t1 = time.perf_counter()
served = engine.recommend(json.loads(sys.argv[3]), n=10, diversity=0.0)
t2 = time.perf_counter()
print(json.dumps({
    "import_load_s": t1 - t0, "first_request_s": t2 - t1,
    "peak_rss_mb": peak_rss_mb(),
    "torch_imported": "torch" in sys.modules, "n": len(served),
}))
"""


# ------------------------------------------------------------------ training
def train_or_load(args: argparse.Namespace, split: Any) -> Any:
    from recommendations.engine.models.base import Recommender
    from recommendations.engine.models.ensemble import Ensemble, EnsembleConfig
    from recommendations.engine.training.profiles import trainer_config
    from recommendations.engine.training.trainer import Trainer

    if args.ensemble:
        model = Recommender.load(args.ensemble)
        if model.items is None or len(model.items) != split.train.n_items:
            raise SystemExit(f"{args.ensemble} was trained on other items")
        return model, {"source": f"loaded from {args.ensemble}"}
    overrides: dict[str, Any] = {}
    if args.members:
        overrides["members"] = tuple(args.members.split(","))
    if args.quick_check:
        overrides.update(
            members=QUICK_MEMBERS, member_overrides=QUICK_OVERRIDES,
            time_budget_s=30.0, samples=20,
        )  # fmt: skip
    config = EnsembleConfig.for_profile(args.profile, **overrides)
    model = Ensemble(config)
    trainer = Trainer(trainer_config(Ensemble, args.profile, seed=args.seed))
    report = model.fit(split.train, split.validation_task(), trainer)
    return model, {
        "source": f"trained here ({args.profile} profile, seed {args.seed})",
        "train_seconds": round(report.train_seconds, 1),
    }


def folded_in(task: EvalTask) -> EvalTask:
    """The same task with every user anonymous (history only, no user id)."""
    return replace(
        task,
        histories=[History(h.items, h.timestamps, h.ratings) for h in task.histories],
    )


# ------------------------------------------------------------------- replay
def replay(
    engine: ServingEngine, task: EvalTask, item_ids: np.ndarray, *, with_recall: bool
) -> dict[str, Any]:
    hits, ndcgs, times, fallbacks = [], [], [], []
    in_candidates, per_source = [], {}
    for h, row in zip(task.histories, range(len(task)), strict=True):
        target = int(task.targets[row].indices[0])
        target_id = item_ids[target]
        history_ids = item_ids[h.items].tolist()
        t0 = time.perf_counter()
        served = engine.recommend(history_ids, n=10, diversity=0.0)
        times.append(1e3 * (time.perf_counter() - t0))
        ids = list(served.item_ids)
        fallbacks.append(served.flags["fallback"] or served.flags["gate_fired"])
        if target_id in ids:
            rank = ids.index(target_id)
            hits.append(1.0)
            ndcgs.append(1.0 / np.log2(rank + 2))
        else:
            hits.append(0.0)
            ndcgs.append(0.0)
        if with_recall:
            cands = engine.pipeline.retriever.retrieve(History(h.items))
            where = np.flatnonzero(cands.items == target)
            in_candidates.append(len(where) > 0)
            for name in ("ensemble", "sequence", "ann", "content", "graph", "popular"):
                tags = cands.sources[where[0]] if len(where) else frozenset()
                per_source.setdefault(name, []).append(name in tags)
    out = {
        "users": len(hits),
        "hr@10": float(np.mean(hits)),
        "ndcg@10": float(np.mean(ndcgs)),
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
        "fallback_rate": float(np.mean(fallbacks)),
    }
    if with_recall:
        out["retrieval_recall"] = float(np.mean(in_candidates))
        out["source_recall"] = {k: float(np.mean(v)) for k, v in per_source.items()}
    return out


def cold_boot(folder: Path, tier: int, history_ids: list[Any]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    argv = [str(folder), str(tier), json.dumps(history_ids)]
    done = subprocess.run(
        [sys.executable, "-c", BOOT_CODE, *argv],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = wall
    return out


# ------------------------------------------------------------------- report
def markdown(res: dict[str, Any]) -> str:
    off = res["offline"]
    lines = [
        "# Serving fidelity (served top 10 vs offline full ranking)",
        "",
        f"- date: {res['date']}",
        f"- command: `{res['command']}`",
        f"- machine: {res['machine']}",
        f"- data: {res['data']}",
        f"- ensemble: {res['ensemble']}",
        "",
        "Offline (full ranking over every unseen item, pessimistic ties): "
        f"NDCG@10 {off['ndcg@10']:.4f}, HR@10 {off['hr@10']:.4f}; with every "
        f"user folded in from the history (no user embedding): NDCG@10 "
        f"{off['foldin_ndcg@10']:.4f}, HR@10 {off['foldin_hr@10']:.4f}.",
        "",
        "| tier | HR@10 | NDCG@10 | served / offline | served / offline fold-in "
        "| NDCG@10 no boosts | NDCG@10 catalog-normalised ranking "
        "| retrieval recall | fallback / gate | p50 ms "
        "| p99 ms | cold boot s (process) | peak RSS MB | torch imported |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tier, r in res["tiers"].items():
        boot = r.get("boot", {})
        lines.append(
            f"| {tier} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} "
            f"| {r['ndcg@10'] / off['ndcg@10']:.1%} "
            f"| {r['ndcg@10'] / off['foldin_ndcg@10']:.1%} "
            f"| {r.get('no_boost_ndcg@10', float('nan')):.4f} "
            f"| {r.get('catalog_ranking_ndcg@10', float('nan')):.4f} "
            f"| {r.get('retrieval_recall', float('nan')):.3f} "
            f"| {r['fallback_rate']:.1%} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {boot.get('process_wall_s', float('nan')):.2f} "
            f"| {boot.get('peak_rss_mb', float('nan')):.0f} "
            f"| {boot.get('torch_imported', '?')} |"
        )
    t = res["tiers"]
    if "1" in t and "2" in t:
        ratio = (
            t["2"]["ndcg@10"] / t["1"]["ndcg@10"] if t["1"]["ndcg@10"] else float("nan")
        )
        lines += ["", f"Tier 2 / tier 1 NDCG@10: {ratio:.4f} (target within 1 %)."]
    lines += ["", "Retrieval recall of the test item per source:", ""]
    for tier, r in t.items():
        if "source_recall" in r:
            parts = ", ".join(f"{k} {v:.3f}" for k, v in r["source_recall"].items())
            lines.append(f"- tier {tier}: {parts}")
    lines += [
        "",
        "Targets: served NDCG@10 >= 95 % of offline; tier 2 within 1 % of tier 1; "
        "cold boot tier 2 <= 3 s, tier 3 <= 1.5 s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="/work/shared/data/ml-100k")
    parser.add_argument("--ensemble", default=None, metavar="DIR")
    parser.add_argument("--profile", choices=("quick", "full"), default="quick")
    parser.add_argument("--members", default=None, help="comma-separated members")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tiers", default="1,2,3")
    parser.add_argument(
        "--ties",
        default="random",
        help="order of same-second events: random, random:SEED or item "
        "(must match the split a loaded --ensemble was trained on)",
    )
    parser.add_argument(
        "--users", type=int, default=0, help="limit test users (0 = all)"
    )
    parser.add_argument("--out", default="/tmp/bench_serving_fidelity.md")
    parser.add_argument("--keep-bundle", default=None, metavar="DIR")
    parser.add_argument(
        "--quick-check", action="store_true", help="synthetic data, tiny members"
    )
    args = parser.parse_args(argv)
    if args.quick_check:
        args.data = "synthetic"
    import torch

    torch.set_num_threads(int(os.environ["APEX_TORCH_THREADS"]))

    data = load_data(args.data, seed=args.seed, ties=args.ties)
    split = make_split(data, "loo")
    model, info = train_or_load(args, split)
    test = split.test_task()
    if args.users:
        keep = slice(0, args.users)
        test = EvalTask(
            test.users[keep],
            test.histories[keep],
            test.exclude[keep],
            test.targets[keep],
        )
    counts = split.train.item_counts()
    offline = evaluate(model, test, item_counts=counts)
    offline_fold = evaluate(model, folded_in(test), item_counts=counts)
    res: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, "
        f"APEX_TORCH_THREADS={os.environ['APEX_TORCH_THREADS']}",
        "data": f"{data.name}: {data.n_users} users, {data.n_items} items, "
        f"{data.n_events} events; test users {len(test)}; same-second events "
        f"ordered {data.ties}",
        "ensemble": f"{info} weights "
        + json.dumps({k: round(v, 3) for k, v in model.weight_dict().items()}),
        "offline": {
            "ndcg@10": offline.mean("ndcg@10"),
            "hr@10": offline.mean("hr@10"),
            "foldin_ndcg@10": offline_fold.mean("ndcg@10"),
            "foldin_hr@10": offline_fold.mean("hr@10"),
        },
        "tiers": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep_bundle or tmp)
        build_bundle(
            folder, train=split.train, ensemble=model,
            metadata=ItemMetadata.from_interactions(split.train),
            profile=args.profile, seed=args.seed,
        )  # fmt: skip
        item_ids = np.asarray(split.train.items.ids)
        sample_history = item_ids[test.histories[0].items].tolist()
        for tier in (int(t) for t in args.tiers.split(",")):
            engine = ServingEngine.load(folder, tier, device="cpu")
            for h in test.histories[:20]:  # warm-up (caches, lazy imports)
                engine.recommend(item_ids[h.items].tolist(), n=10, diversity=0.0)
            row = replay(engine, test, item_ids, with_recall=True)
            plain = engine.pipeline.reranker
            engine.pipeline.reranker = Reranker(
                plain.meta, plain.similarity,
                RerankConfig(franchise_boost=0, director_boost=0, era_boost=0,
                             quality_boost=0, no_genre_penalty=0),
            )  # fmt: skip
            row["no_boost_ndcg@10"] = replay(engine, test, item_ids, with_recall=False)[
                "ndcg@10"
            ]
            engine.pipeline.reranker = plain
            if tier in (1, 2):
                by_catalog = ServingEngine.load(folder, tier, ranking="catalog")
                row["catalog_ranking_ndcg@10"] = replay(
                    by_catalog, test, item_ids, with_recall=False
                )["ndcg@10"]
            row["boot"] = cold_boot(folder, tier, sample_history)
            res["tiers"][str(tier)] = row
            print(f"tier {tier}: {json.dumps(row)}", file=sys.stderr)
    text = markdown(res)
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
