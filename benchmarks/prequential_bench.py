"""Does online learning help? Prequential evaluation of the KAN ranker (issue 13).

Per data set (ML-100K, ml-latest-small), with a global temporal split:

- **validation stage** (tuning): KAN trained on the first 70 % of event time
  (quick profile, early stopping on the events of 70-80 %, ``--budget``
  seconds at most), then the 70-80 % events replayed prequentially; with
  ``--grid`` several online settings are tried here (``tables_sgd`` only;
  ``frozen`` and ``tables`` do not depend on them) and the best by NDCG@10
  is kept;
- **test stage** (the reported numbers): KAN trained on the first 80 % for
  the number of epochs early stopping chose in the validation stage, then the
  80-100 % events replayed: ``frozen`` (growing histories only), ``tables``
  (+ incremental feature tables), ``tables_sgd`` (+ guarded online KAN SGD),
  all on the same stream, the same predicted sample and the same seeds.

Prints a table, writes JSON (``--out``). One torch thread
(``APEX_TORCH_THREADS``, default 1 here); progress lines with ETA.

    APEX_TORCH_THREADS=1 python benchmarks/prequential_bench.py \\
        [--data ml-100k,ml-latest-small] [--predict 2000] [--budget 240] \\
        [--grid '[{"lr": 0.01}, {"lr": 0.03, "steps": 2}]'] \\
        [--online '{"lr": 0.01}'] [--stages valid,test] [--out results.json]

The models are cached in ``--cache`` (fitting them is the slow part), keyed
by data set, stage, seed and budget.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("APEX_TORCH_THREADS", "1")

from recommendations.engine.data.interactions import Interactions  # noqa: E402
from recommendations.engine.data.loading import load_data  # noqa: E402
from recommendations.engine.data.splits import make_task  # noqa: E402
from recommendations.engine.evaluation.prequential import (  # noqa: E402
    PrequentialConfig,
    PrequentialResult,
    run_prequential,
    training_events,
)
from recommendations.engine.models import Recommender  # noqa: E402
from recommendations.engine.models.kan import KAN  # noqa: E402
from recommendations.engine.online import OnlineConfig  # noqa: E402
from recommendations.engine.training import Trainer  # noqa: E402
from recommendations.engine.training.trainer import set_threads  # noqa: E402

logger = logging.getLogger("prequential_bench")

DATA = {
    "ml-100k": str(ROOT.parent / "shared/data/ml-100k"),
    "ml-latest-small": str(ROOT.parent / "shared/data/ml-latest-small"),
}
STAGES = {"valid": (0.7, 0.8), "test": (0.8, 1.0)}
GRID: list[dict[str, Any]] = [
    {"optimizer": "sgd", "lr": 0.1, "negatives": 32, "replay": 0},
    {"optimizer": "sgd", "lr": 0.01, "negatives": 8, "replay": 0},
    {"optimizer": "sgd", "lr": 0.1, "negatives": 32, "replay": 300, "steps": 2},
]
"""Settings tried on validation besides the default ``OnlineConfig``."""


def data_path(name: str) -> str:
    for candidate in (DATA.get(name), "/work/shared/data/" + name):
        if candidate and Path(candidate).exists():
            return candidate
    return name


class Factory:
    """Fits (or loads from the cache) the KAN of one stage."""

    def __init__(self, data: Interactions, name: str, args: argparse.Namespace):
        self.data, self.name, self.args = data, name, args
        self.best_epoch: int | None = None
        self.fit_report: dict[str, Any] = {}

    def folder(self, stage: str) -> Path:
        a = self.args
        guard = f"g{a.guard_users}x{a.guard_events}"
        key = f"{self.name}-{stage}-s{a.seed}-b{a.budget:g}-{guard}"
        return Path(a.cache) / key

    def __call__(self, stage: str, train: Interactions) -> KAN:
        a = self.args
        folder = self.folder(stage)
        meta = folder / "bench.json"
        if meta.exists():
            model = Recommender.load(folder)
            assert isinstance(model, KAN)
            self.fit_report = json.loads(meta.read_text())
            self.best_epoch = self.fit_report.get("best_epoch") or self.best_epoch
            logger.info("loaded %s from %s", stage, folder)
            return model
        model = KAN(KAN.Config.for_profile("quick"))
        t = self.data.timestamps
        if stage == "valid":  # early stopping on the 70-80 % events
            lo, hi = (np.quantile(t, q, method="higher") for q in STAGES["valid"])
            valid = make_task(train, self.data.select((t >= lo) & (t < hi)))
            trainer = Trainer(
                max_epochs=30, patience=3, seed=a.seed, time_budget_s=a.budget
            )
            report = model.fit(train, valid, trainer)
            self.best_epoch = report.best_epoch or report.epochs
        else:  # as many epochs as early stopping chose on the validation stage
            epochs = self.best_epoch or 1
            trainer = Trainer(max_epochs=epochs, seed=a.seed, time_budget_s=a.budget)
            report = model.fit(train, None, trainer)
        self.fit_report = {**report.as_dict(), "best_epoch": self.best_epoch}
        model.save(folder)
        meta.write_text(json.dumps(self.fit_report))
        return model


def per_data(value: str, index: int) -> int:
    """The ``index``-th of comma-separated integers (the last one repeats)."""
    values = [int(v) for v in value.split(",")]
    return values[min(index, len(values) - 1)]


def stage_config(
    stage: str, args: argparse.Namespace, index: int, variants: tuple[str, ...]
) -> PrequentialConfig:
    train_end, stream_end = STAGES[stage]
    predict = args.predict_valid if stage == "valid" else args.predict
    return PrequentialConfig(
        train_end=train_end,
        stream_end=stream_end,
        batch_size=args.batch,
        predict_sample=per_data(predict, index),
        seed=args.seed,
        guard_users=args.guard_users,
        guard_events=args.guard_events,
        variants=variants,
    )


def run_data(
    name: str, index: int, args: argparse.Namespace, chosen: dict[str, Any] | None
) -> dict[str, Any]:
    data = load_data(data_path(name))
    factory = Factory(data, name, args)
    start = {
        **json.loads(args.online),
        "guard_every": per_data(args.guard_every, index),
    }
    base = OnlineConfig(**start)
    out: dict[str, Any] = {"data": name, "describe": data.describe()}
    if "valid" in args.stages:
        if chosen is None:  # tune here
            grid = [{}] + json.loads(args.grid)
        else:  # check the setting tuned on the first data set
            grid = [chosen]
        started = time.perf_counter()
        baseline = run_prequential(
            data,
            lambda tr: factory("valid", tr),
            stage_config("valid", args, index, ("frozen", "tables")),
            base,
        )
        out["valid_fit"] = factory.fit_report
        tried = []
        for i, overrides in enumerate(grid):
            online = OnlineConfig(**{**base.model_dump(), **overrides})
            logger.info("validation %s: setting %d/%d %s", name, i + 1, len(grid),
                        overrides)  # fmt: skip
            result = run_prequential(
                data,
                lambda tr: factory("valid", tr),
                stage_config("valid", args, index, ("tables_sgd",)),
                online,
            )
            merged = merge(baseline, result)
            tried.append({"overrides": overrides, "summary": merged.summary()})
            row = merged.summary()
            logger.info("validation %s %s: %s", name, overrides, brief(row))
        best = max(
            tried, key=lambda r: r["summary"]["variants"]["tables_sgd"]["ndcg@10"]
        )
        out["valid"] = tried
        out["chosen"] = best["overrides"]
        out["valid_seconds"] = round(time.perf_counter() - started, 1)
        base = OnlineConfig(**{**base.model_dump(), **best["overrides"]})
    if "test" in args.stages:
        if factory.best_epoch is None and not factory.folder("test").exists():
            cfg = stage_config("valid", args, index, ("frozen",))
            factory("valid", training_events(data, cfg)[0])
        started = time.perf_counter()
        result = run_prequential(
            data,
            lambda tr: factory("test", tr),
            stage_config("test", args, index, ("frozen", "tables", "tables_sgd")),
            base,
        )
        out["test_fit"] = factory.fit_report
        out["test"] = result.summary()
        out["test_seconds"] = round(time.perf_counter() - started, 1)
    return out


def merge(a: PrequentialResult, b: PrequentialResult) -> PrequentialResult:
    """The variants of two runs on the same stream and sample, as one result."""
    assert np.array_equal(a.predicted, b.predicted)
    return PrequentialResult(
        data=a.data, config=a.config, online=b.online, train_events=a.train_events,
        stream_events=a.stream_events, predicted=a.predicted,
        known_user=a.known_user, new_item=a.new_item,
        variants={**a.variants, **b.variants}, fit_seconds=a.fit_seconds,
    )  # fmt: skip


def brief(summary: dict[str, Any]) -> str:
    v = summary["variants"]
    parts = [f"{n} {v[n]['ndcg@10']:.4f}" for n in v]
    cmp = summary["comparisons"].get("tables_sgd - frozen")
    if cmp:
        c = cmp["ndcg"]
        parts.append(
            f"ratio {c['ratio']:.3f} [{c['ratio_low']:.3f}, {c['ratio_high']:.3f}]"
        )
    return ", ".join(parts)


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| data | variant | NDCG@10 | HR@10 | NDCG@10 known / new users "
        "| update events/s | guards (rollbacks) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "test" not in r:
            continue
        for name, v in r["test"]["variants"].items():
            known, new = v["ndcg@10_known_users"], v["ndcg@10_new_users"]
            rate = v["update_events_per_s"]
            lines.append(
                f"| {r['data']} | {name} | {v['ndcg@10']:.4f} | {v['hr@10']:.4f} "
                f"| {fmt(known)} / {fmt(new)} | {rate if rate else '-'} "
                f"| {v['guards']} ({v['rollbacks']}) |"
            )
    lines += [
        "",
        "| data | comparison | NDCG@10 diff [95 % CI] | ratio [95 % CI] "
        "| HR@10 diff [95 % CI] |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        if "test" not in r:
            continue
        for pair, c in r["test"]["comparisons"].items():
            n, h = c["ndcg"], c["hr"]
            lines.append(
                f"| {r['data']} | {pair} | {n['mean_diff']:+.4f} "
                f"[{n['low']:+.4f}, {n['high']:+.4f}] | {n['ratio']:.3f} "
                f"[{n['ratio_low']:.3f}, {n['ratio_high']:.3f}] "
                f"| {h['mean_diff']:+.4f} [{h['low']:+.4f}, {h['high']:+.4f}] |"
            )
    return "\n".join(lines)


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="ml-100k,ml-latest-small")
    parser.add_argument("--stages", default="valid,test")
    parser.add_argument(
        "--predict",
        default="5000,2000",
        help="test-stream events predicted per data set (a seeded sample; "
        "comma-separated, in --data order)",
    )
    parser.add_argument(
        "--predict-valid",
        default="3000,800",
        help="the same for the validation stream",
    )
    parser.add_argument("--batch", type=int, default=100, help="micro-batch size")
    parser.add_argument(
        "--budget",
        type=float,
        default=240.0,
        help="training time budget per model, seconds",
    )
    parser.add_argument(
        "--online",
        default="{}",
        help="OnlineConfig overrides (JSON), the starting setting",
    )
    parser.add_argument(
        "--grid",
        default=json.dumps(GRID),
        help="JSON list of further overrides tried on the first data set's "
        "validation stream; the other data sets check the chosen one",
    )
    parser.add_argument(
        "--guard-every",
        default="10,50",
        help="guard every this many batches, per data set",
    )
    parser.add_argument(
        "--guard-users",
        type=int,
        default=200,
        help="users whose last training events are held out (guard)",
    )
    parser.add_argument(
        "--guard-events",
        type=int,
        default=3,
        help="last training events held out per guard user",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default="/tmp/apex_prequential_models")
    parser.add_argument("--out", default="prequential_results.json")
    args = parser.parse_args()  # fmt: skip
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    args.stages = tuple(args.stages.split(","))
    set_threads(None)  # APEX_TORCH_THREADS (1 unless set): scoring and online too
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    chosen = None
    for index, name in enumerate(args.data.split(",")):
        results.append(run_data(name, index, args, chosen))
        chosen = results[0].get("chosen")
        Path(args.out).write_text(json.dumps(meta(args, started, results), indent=1))
    print(table(results))
    print(f"\nwrote {args.out} ({time.perf_counter() - started:.0f}s)")


def meta(
    args: argparse.Namespace, started: float, results: list[dict[str, Any]]
) -> dict[str, Any]:
    import torch

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()}",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "args": {k: v for k, v in vars(args).items()},
        "seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }


if __name__ == "__main__":
    main()
