"""Command line: ``python -m recommendations.engine evaluate ...``.

::

    python -m recommendations.engine evaluate --data ml-100k|synthetic|PATH \\
        --models pop,ease,itemknn,sasrec,lightgcn [--protocol loo|temporal] \\
        [--seeds 1,2,3] [--profile quick|full] [--device cpu|cuda] \\
        --out results.json [--dump-scores DIR]

``--data`` takes a MovieLens name (loaded through the sources of
:func:`~recommendations.engine.data.movielens.load_movielens`), a MovieLens
folder, a CSV file ``user_id,item_id,rating,timestamp``, or ``synthetic``.
The options above are a stable interface used by benchmark scripts.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from recommendations.engine.data.interactions import Interactions
from recommendations.engine.data.splits import Split, make_split
from recommendations.engine.errors import ConfigError, EngineError
from recommendations.engine.evaluation.evaluator import EvaluationResult, evaluate
from recommendations.engine.evaluation.stats import mean_ci, paired_bootstrap
from recommendations.engine.models.registry import get_model_class, model_names
from recommendations.engine.training.profiles import model_config, trainer_config
from recommendations.engine.training.trainer import Trainer

logger = logging.getLogger("recommendations.engine.cli")

HEADLINE = ("hr@10", "ndcg@10", "mrr@10")


def load_data(spec: str, *, seed: int = 0) -> Interactions:
    """Resolve ``--data``: a MovieLens name, ``synthetic``, a folder or a CSV file."""
    from recommendations.engine.data import movielens, synthetic

    if spec == "synthetic":
        return synthetic.generate(
            users=200, items=120, interactions=5000, seed=seed
        ).interactions()
    path = Path(spec)
    if path.is_file():
        return Interactions.from_csv(path)
    if path.is_dir():
        return Interactions.from_movielens(movielens.read_folder(path))
    if spec.startswith("ml-"):
        return Interactions.from_movielens(movielens.load_movielens(spec))
    raise ConfigError(f"--data {spec!r} is not a data set name, folder or CSV file")


def _summarise(values: list[float]) -> dict[str, float]:
    ci = mean_ci(np.asarray(values))
    return {
        "mean": ci["mean"], "low": ci["low"], "high": ci["high"],
        "median": float(np.median(values)), "per_seed": values,
    }  # fmt: skip


def run_model(
    name: str,
    split: Split,
    *,
    seed: int,
    profile: str,
    device: str,
    keep_scores: bool,
) -> tuple[dict[str, Any], EvaluationResult]:
    model_cls = get_model_class(name)
    model = model_cls(model_config(model_cls, profile))
    trainer = Trainer(trainer_config(model_cls, profile, seed=seed, device=device))
    report = model.fit(split.train, split.validation_task(), trainer)
    result = evaluate(
        model,
        split.test_task(),
        item_counts=split.train.item_counts(),
        interacted=split.full.matrix(),
        sample_seed=seed,
        keep_scores=keep_scores,
    )
    record = {
        "seed": seed,
        "fit": report.as_dict(),
        "train_seconds": report.train_seconds,
        "scoring_seconds": result.scoring_seconds,
        **result.summary(),
    }
    logger.info(
        "%s seed %d: %s train %.1fs",
        name,
        seed,
        {m: round(result.mean(m), 4) for m in HEADLINE},
        report.train_seconds,
    )
    return record, result


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in names:
        get_model_class(name)  # unknown names fail before any training
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    data = load_data(args.data, seed=seeds[0])
    split = make_split(data, args.protocol)
    out: dict[str, Any] = {
        "dataset": {**data.describe(), "source": args.data, "splits": split.sizes()},
        "protocol": {
            "split": args.protocol,
            "full_ranking": "all items except the user's train + validation items; "
            "pessimistic ties",
            "sampled": "test item vs 100 uniform never-interacted items, "
            "seed = run seed",
            "test_history": "train + validation",
        },
        "profile": args.profile,
        "seeds": seeds,
        "device": args.device,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "models": {},
    }
    per_user: dict[str, np.ndarray] = {}
    for name in names:
        runs, results = [], []
        for seed in seeds:
            keep = bool(args.dump_scores) and seed == seeds[0]
            record, result = run_model(
                name, split, seed=seed, profile=args.profile, device=args.device,
                keep_scores=keep,
            )  # fmt: skip
            runs.append(record)
            results.append(result)
            if keep:
                dump_scores(Path(args.dump_scores), name, data, result)
        model_cls = get_model_class(name)
        over_seeds = {
            "full": {
                m: _summarise([r.mean(m) for r in results]) for m in results[0].full
            },
            "sampled": {
                m: _summarise([r.mean(m, sampled=True) for r in results])
                for m in results[0].sampled
            },
            "train_seconds": _summarise([r["train_seconds"] for r in runs]),
            "scoring_seconds": _summarise([r["scoring_seconds"] for r in runs]),
        }
        out["models"][name] = {
            "hyperparameters": model_config(model_cls, args.profile).model_dump(
                mode="json"
            ),
            "trainer": trainer_config(model_cls, args.profile).model_dump(mode="json"),
            "over_seeds": over_seeds,
            "runs": runs,
        }
        per_user[name] = np.nanmean([r.full["ndcg@10"] for r in results], axis=0)
    if "pop" in per_user:
        out["paired_vs_pop_ndcg@10"] = {
            n: paired_bootstrap(v, per_user["pop"])
            for n, v in per_user.items()
            if n != "pop"
        }
    out["total_seconds"] = round(time.perf_counter() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=_json_default))
    logger.info("wrote %s", args.out)
    return out


def dump_scores(
    folder: Path, name: str, data: Interactions, result: EvaluationResult
) -> None:
    """Write ``<name>/scores.npy`` (float32 ``[n_users, n_items]``) + id orders."""
    target = folder / name
    target.mkdir(parents=True, exist_ok=True)
    np.save(target / "scores.npy", result.scores.astype(np.float32))
    users = data.users.ids[result.users]
    (target / "users.txt").write_text("\n".join(str(u) for u in users) + "\n")
    (target / "items.txt").write_text("\n".join(str(i) for i in data.items.ids) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


def markdown_report(results: dict[str, Any]) -> str:
    """A Markdown table of one results.json: mean over seeds (and seed range)."""
    metrics = ("hr@10", "ndcg@10", "mrr@10")
    head = (
        "| model | " + " | ".join(f"{m} full" for m in metrics)
        + " | ndcg@10 sampled | hr@10 sampled | train s (mean) | cpu s | scoring s |"
    )  # fmt: skip
    lines = [head, "|" + "---|" * (len(metrics) + 6)]
    for name, entry in results["models"].items():
        seeds = entry["over_seeds"]
        cells = []
        for m in metrics:
            v = seeds["full"][m]
            cells.append(
                f"{v['mean']:.4f} ({min(v['per_seed']):.4f}-{max(v['per_seed']):.4f})"
            )
        for m in ("ndcg@10", "hr@10"):
            cells.append(
                f"{seeds['sampled'][m]['mean']:.4f}" if m in seeds["sampled"] else "-"
            )
        cpu = np.mean(
            [r["fit"].get("cpu_seconds", float("nan")) for r in entry["runs"]]
        )
        cells += [
            f"{seeds['train_seconds']['mean']:.1f}",
            f"{cpu:.1f}",
            f"{seeds['scoring_seconds']['mean']:.2f}",
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recommendations.engine")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="train and evaluate models on one split")
    ev.add_argument("--data", required=True, help="ml-100k | synthetic | folder | CSV")
    ev.add_argument(
        "--models",
        default="pop,ease,itemknn,sasrec,lightgcn",
        help=f"comma-separated, from: {','.join(model_names())}",
    )
    ev.add_argument("--protocol", choices=("loo", "temporal"), default="loo")
    ev.add_argument("--seeds", default="1,2,3")
    ev.add_argument("--profile", choices=("quick", "full"), default="quick")
    ev.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ev.add_argument("--out", required=True, help="results.json to write")
    ev.add_argument(
        "--dump-scores",
        default=None,
        metavar="DIR",
        help="write each model's test score matrix (first seed)",
    )
    ev.add_argument("-v", "--verbose", action="store_true")
    rep = sub.add_parser("report", help="print results.json files as Markdown tables")
    rep.add_argument("results", nargs="+")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "evaluate":
            cmd_evaluate(args)
        elif args.command == "report":
            for path in args.results:
                sys.stdout.write(f"\n{path}\n\n")
                sys.stdout.write(
                    markdown_report(json.loads(Path(path).read_text())) + "\n"
                )
    except EngineError as exc:
        logger.error("%s", exc)
        return 2
    return 0
