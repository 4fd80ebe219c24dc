"""Train and evaluate registered models on one split, over seeds: ``results.json``.

:func:`evaluate_models` is what ``python -m recommendations.engine evaluate``
runs; :func:`markdown_report` renders its result as a Markdown table
(``... report``).
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from recommendations.engine.data.interactions import Interactions
from recommendations.engine.data.loading import load_data
from recommendations.engine.data.splits import Split, make_split
from recommendations.engine.evaluation.evaluator import EvaluationResult, evaluate
from recommendations.engine.evaluation.stats import mean_ci, paired_bootstrap
from recommendations.engine.models.base import Recommender
from recommendations.engine.models.ensemble import Ensemble
from recommendations.engine.models.registry import get_model_class
from recommendations.engine.training.profiles import model_config, trainer_config
from recommendations.engine.training.trainer import FitReport, Trainer

__all__ = [
    "HEADLINE",
    "dump_scores",
    "evaluate_models",
    "markdown_report",
    "run_model",
]

logger = logging.getLogger(__name__)

HEADLINE = ("hr@10", "ndcg@10", "mrr@10")


def evaluate_models(
    data_spec: str,
    models: Sequence[str],
    *,
    protocol: str = "loo",
    seeds: Sequence[int] = (1, 2, 3),
    profile: str = "quick",
    device: str = "cpu",
    dump_scores_to: Path | None = None,
    ensemble_members: Sequence[str] | None = None,
    ties: str | None = None,
) -> dict[str, Any]:
    """Every model on the ``protocol`` split of ``data_spec``, once per seed.

    Returns the results document (dataset, protocol, per model: hyperparameters,
    trainer settings, each run and the summary over seeds; the paired bootstrap
    against ``pop`` when it ran). ``dump_scores_to``: also write each model's
    test score matrix of the first seed there (:func:`dump_scores`). The
    ensemble, when listed, blends the members fitted in the same run.
    ``ties``: the order of same-second events (``load_data``; recorded under
    ``dataset``).
    """
    names = list(models)
    for name in names:
        get_model_class(name)  # unknown names fail before any training
    seeds = list(seeds)
    started = time.perf_counter()
    data = load_data(data_spec, seed=seeds[0], ties=ties)
    split = make_split(data, protocol)
    out: dict[str, Any] = {
        "dataset": {**data.describe(), "source": data_spec, "splits": split.sizes()},
        "protocol": {
            "split": protocol,
            "full_ranking": "all items except the user's train + validation items; "
            "pessimistic ties",
            "sampled": "test item vs 100 uniform never-interacted items, "
            "seed = run seed",
            "test_history": "train + validation",
            "equal_timestamps": str(data.ties),
        },
        "profile": profile,
        "seeds": seeds,
        "device": device,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "models": {},
    }
    per_user: dict[str, np.ndarray] = {}
    overrides: dict[str, dict[str, Any]] = {}
    if ensemble_members is not None:
        overrides["ensemble"] = {"members": tuple(ensemble_members)}
    # The ensemble goes last so it can blend the members fitted for each seed.
    names = sorted(names, key=lambda n: n == "ensemble")
    all_runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    all_results: dict[str, list[EvaluationResult]] = {n: [] for n in names}
    for seed in seeds:
        fitted: dict[str, Recommender] = {}
        for name in names:
            keep = dump_scores_to is not None and seed == seeds[0]
            record, result, model = run_model(
                name, split, seed=seed, profile=profile, device=device,
                keep_scores=keep, fitted=fitted, overrides=overrides.get(name),
            )  # fmt: skip
            fitted[name] = model
            all_runs[name].append(record)
            all_results[name].append(result)
            if keep and dump_scores_to is not None:
                dump_scores(dump_scores_to, name, data, result)
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
                model_cls, profile, **overrides.get(name, {})
            ).model_dump(mode="json"),
            "trainer": trainer_config(model_cls, profile).model_dump(mode="json"),
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
    return out


def _summarise(values: list[float]) -> dict[str, Any]:
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
    if isinstance(model, Ensemble) and fitted and all(m in fitted for m in members):
        report = _ensemble_from_fitted(model, fitted, split, seed)
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
    member_fit = [fitted[m].last_fit for m in members]
    member_seconds = sum(r.train_seconds for r in member_fit if r is not None)
    report.train_seconds = member_seconds + time.perf_counter() - started
    report.cpu_seconds = sum(r.cpu_seconds for r in member_fit if r is not None)
    report.epochs = 1
    report.extra.update(model.fit_info)
    report.extra["members_seconds"] = round(member_seconds, 1)
    report.extra["reused_members"] = True
    return report


def dump_scores(
    folder: Path, name: str, data: Interactions, result: EvaluationResult
) -> None:
    """Write ``<name>/scores.npy`` (float32 ``[n_users, n_items]``) + id orders."""
    if result.scores is None:
        raise ValueError("the evaluation kept no scores (keep_scores=False)")
    target = folder / name
    target.mkdir(parents=True, exist_ok=True)
    np.save(target / "scores.npy", result.scores.astype(np.float32))
    users = data.users.ids[result.users]
    (target / "users.txt").write_text("\n".join(str(u) for u in users) + "\n")
    (target / "items.txt").write_text("\n".join(str(i) for i in data.items.ids) + "\n")


def markdown_report(results: dict[str, Any]) -> str:
    """A Markdown table of one results.json: mean over seeds (and seed range)."""
    metrics = HEADLINE
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
