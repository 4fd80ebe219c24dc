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
from typing import TYPE_CHECKING, Any

import numpy as np

from recommendations.engine.data.interactions import Interactions
from recommendations.engine.data.splits import Split, make_split
from recommendations.engine.errors import ConfigError, EngineError
from recommendations.engine.evaluation.evaluator import EvaluationResult, evaluate
from recommendations.engine.evaluation.stats import mean_ci, paired_bootstrap
from recommendations.engine.models.registry import get_model_class, model_names
from recommendations.engine.training.profiles import model_config, trainer_config
from recommendations.engine.training.trainer import FitReport, Trainer

if TYPE_CHECKING:
    from recommendations.engine.models.base import Recommender
    from recommendations.engine.models.ensemble import Ensemble

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
    fitted: dict[str, Recommender] | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], EvaluationResult, Recommender]:
    """Train (or, for the ensemble, reuse this seed's fitted members) and test."""
    model_cls = get_model_class(name)
    model = model_cls(model_config(model_cls, profile, **(overrides or {})))
    trainer = Trainer(trainer_config(model_cls, profile, seed=seed, device=device))
    members = getattr(model.config, "members", ())
    if name == "ensemble" and fitted and all(m in fitted for m in members):
        report = _ensemble_from_fitted(model, fitted, split, seed)  # type: ignore[arg-type]
    else:
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
    return record, result, model


def _ensemble_from_fitted(
    model: Ensemble, fitted: dict[str, Recommender], split: Split, seed: int
) -> FitReport:
    """Blend members trained earlier in the same run (same seed): no retraining."""
    started = time.perf_counter()
    model.use_members(fitted, split.train, split.validation_task(), seed=seed)
    report = FitReport(model="ensemble")
    members = model.config.members
    member_fit = [getattr(fitted[m], "last_fit", None) for m in members]
    member_seconds = sum(r.train_seconds for r in member_fit if r is not None)
    report.train_seconds = member_seconds + time.perf_counter() - started
    report.cpu_seconds = sum(r.cpu_seconds for r in member_fit if r is not None)
    report.epochs = 1
    report.extra.update(model.fit_info)
    report.extra["members_seconds"] = round(member_seconds, 1)
    report.extra["reused_members"] = True
    return report


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
    overrides: dict[str, dict[str, Any]] = {}
    if args.ensemble_members:
        overrides["ensemble"] = {
            "members": tuple(m for m in args.ensemble_members.split(",") if m)
        }
    # The ensemble goes last so it can blend the members fitted for each seed.
    names = sorted(names, key=lambda n: n == "ensemble")
    all_runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    all_results: dict[str, list[EvaluationResult]] = {n: [] for n in names}
    for seed in seeds:
        fitted: dict[str, Recommender] = {}
        for name in names:
            keep = bool(args.dump_scores) and seed == seeds[0]
            record, result, model = run_model(
                name, split, seed=seed, profile=args.profile, device=args.device,
                keep_scores=keep, fitted=fitted, overrides=overrides.get(name),
            )  # fmt: skip
            fitted[name] = model
            all_runs[name].append(record)
            all_results[name].append(result)
            if keep:
                dump_scores(Path(args.dump_scores), name, data, result)
    for name in names:
        runs, results = all_runs[name], all_results[name]
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
            "hyperparameters": model_config(
                model_cls, args.profile, **overrides.get(name, {})
            ).model_dump(mode="json"),
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


def fit_ensemble_weights(
    data_spec: str,
    *,
    members: list[str] | None = None,
    profile: str = "quick",
    seed: int = 1,
    device: str = "cpu",
    objective: str = "dr",
    save_model: str | Path | None = None,
) -> dict[str, Any]:
    """Train the ensemble's members and choose its weights on validation.

    Returns what a weights version stores: weights, normalisation, the
    estimates (DR, IPS, SNIPS, validation NDCG@10), the gate threshold, the
    data it was fitted on and when. ``manage.py debias`` stores it as a
    proposed ``EnsembleWeights`` version.
    """
    from recommendations.engine.models.ensemble import Ensemble, EnsembleConfig

    data = load_data(data_spec, seed=seed)
    split = make_split(data, "loo")
    overrides: dict[str, Any] = {"objective": objective}
    if members:
        overrides["members"] = tuple(members)
    config = EnsembleConfig.for_profile(profile, **overrides)
    model = Ensemble(config)
    trainer = Trainer(trainer_config(Ensemble, profile, seed=seed, device=device))
    report = model.fit(split.train, split.validation_task(), trainer)
    selection = model.selection
    out = {
        "weights": model.weight_dict(),
        "normalisation": model.normalisation,
        "objective": objective,
        "estimated_value": selection.value if selection else None,
        "estimates": selection.estimates if selection else {},
        "by_normalisation": selection.by_normalisation if selection else {},
        "gate": model.gate.as_dict() if model.gate else None,
        "fitted_on": {
            **data.describe(),
            "source": data_spec,
            "protocol": "loo (weights chosen on the validation events)",
            "splits": split.sizes(),
            "seed": seed,
            "profile": profile,
        },
        "train_seconds": round(report.train_seconds, 1),
        "members_fit": report.extra.get("members_fit", {}),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if save_model:
        model.save(save_model)
        out["model_path"] = str(save_model)
    return json.loads(json.dumps(out, default=_json_default_finite))


def _json_default_finite(value: Any) -> Any:
    return _json_default(value)


def cmd_debias(args: argparse.Namespace) -> dict[str, Any]:
    out = fit_ensemble_weights(
        args.data,
        members=[m for m in (args.members or "").split(",") if m] or None,
        profile=args.profile,
        seed=args.seed,
        device=args.device,
        objective=args.objective,
        save_model=args.save_model,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    logger.info("wrote %s: %s", args.out, out["weights"])
    return out


def cmd_ablation(args: argparse.Namespace) -> dict[str, Any]:
    from recommendations.engine.ensemble.ablation import run_ablation, write_report

    members = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in members:
        get_model_class(name)
    seeds = [int(s) for s in args.seeds.split(",")]
    data = load_data(args.data, seed=seeds[0])
    split = make_split(data, "loo")
    results = run_ablation(
        split, members, seeds=seeds, profile=args.profile, device=args.device,
        dataset={**data.describe(), "source": args.data, "splits": split.sizes()},
        save_ensemble=Path(args.save_ensemble) if args.save_ensemble else None,
    )  # fmt: skip
    results["command"] = " ".join(
        ["--data", args.data, "--models", args.models, "--seeds", args.seeds,
         "--profile", args.profile]
    )  # fmt: skip
    write_report(results, Path(args.out))
    logger.info("wrote %s", args.out)
    return results


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
    ev.add_argument(
        "--ensemble-members",
        default=None,
        help="members of `ensemble` (default: the six neural models); members "
        "also listed in --models are trained once and reused",
    )
    ev.add_argument("-v", "--verbose", action="store_true")
    de = sub.add_parser(
        "debias", help="train the ensemble's members and choose weights by DR"
    )
    de.add_argument("--data", required=True, help="ml-100k | synthetic | folder | CSV")
    de.add_argument("--members", default=None, help="comma-separated member models")
    de.add_argument("--profile", choices=("quick", "full"), default="quick")
    de.add_argument("--seed", type=int, default=1)
    de.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    de.add_argument("--objective", choices=("dr", "ips", "snips", "ndcg"), default="dr")
    de.add_argument("--out", required=True, help="weights JSON to write")
    de.add_argument("--save-model", default=None, metavar="DIR")
    ab = sub.add_parser("ablation", help="members, ensemble and leave-one-out report")
    ab.add_argument("--data", required=True, help="ml-100k | synthetic | folder | CSV")
    ab.add_argument(
        "--models", default="sasrec,lightgcn,kan,neural_ode,hyperbolic,diffusion",
        help="the ensemble's members",
    )  # fmt: skip
    ab.add_argument("--seeds", default="1,2,3")
    ab.add_argument("--profile", choices=("quick", "full"), default="quick")
    ab.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ab.add_argument(
        "--out", required=True, help="Markdown report (PNG + JSON beside it)"
    )
    ab.add_argument(
        "--save-ensemble",
        default=None,
        metavar="DIR",
        help="save the first seed's DR-weighted ensemble (members included)",
    )
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
        elif args.command == "debias":
            cmd_debias(args)
        elif args.command == "ablation":
            cmd_ablation(args)
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
