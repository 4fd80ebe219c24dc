"""The ablation study: every member, the ensemble, and the ensemble without each.

``python -m recommendations.engine ablation --data ml-100k --out
docs/ABLATION_RESULTS.md`` runs, per seed:

1. every member trained on its own with its ``profile`` (the fair single-model
   numbers) and scored once on the validation and the test task;
2. the ensemble of all members with DR-selected weights (the original
   design), the same members with weights chosen by plain validation NDCG@10
   (the product's default since issue 19: ``EnsembleConfig.objective``),
   and the DR ensemble without each member (weights re-selected without
   it) - all blended from the cached member scores, so no model is trained
   twice;
3. the uncertainty gate calibrated on validation and applied on test.

It writes a Markdown report, a PNG chart of NDCG@10 per model and per
leave-one-out ensemble, and the raw numbers as JSON next to the report.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from recommendations.engine.data.interactions import History, Interactions
from recommendations.engine.data.loading import load_data
from recommendations.engine.data.splits import EvalTask, Split, make_split
from recommendations.engine.ensemble.gate import (
    calibrate_gate,
    content_fallback_scores,
    disagreement,
    gated_ndcg,
    genre_matrix,
)
from recommendations.engine.ensemble.selection import BlendData, select_weights
from recommendations.engine.evaluation.evaluator import EvaluationResult, evaluate
from recommendations.engine.evaluation.stats import mean_ci, paired_bootstrap
from recommendations.engine.jsonable import to_jsonable
from recommendations.engine.models.registry import get_model_class
from recommendations.engine.training.profiles import model_config, trainer_config
from recommendations.engine.training.trainer import Trainer

logger = logging.getLogger(__name__)

NDCG_ENSEMBLE = "ensemble (NDCG weights)"


class MatrixScorer:
    """Serves precomputed rows of a ``(B, N)`` score matrix to the evaluator."""

    def __init__(self, matrix: np.ndarray, histories: list[History]) -> None:
        self.matrix = matrix
        self.row = {id(h): i for i, h in enumerate(histories)}

    def score(self, histories: Sequence[History]) -> np.ndarray:
        return self.matrix[[self.row[id(h)] for h in histories]]


def _evaluate_matrix(
    matrix: np.ndarray, task: EvalTask, split: Split, seed: int
) -> EvaluationResult:
    return evaluate(
        MatrixScorer(matrix, task.histories),
        task,
        item_counts=split.train.item_counts(),
        interacted=split.full.matrix(),
        sample_seed=seed,
    )


def _summary(result: EvaluationResult) -> dict[str, Any]:
    return {
        "full": {m: float(np.nanmean(v)) for m, v in result.full.items()},
        "full_ci": {m: mean_ci(v) for m, v in result.full.items() if m.endswith("@10")},
        "sampled": {m: float(np.nanmean(v)) for m, v in result.sampled.items()},
        "beyond": result.beyond,
    }


def _score_all(
    model: Any, task: EvalTask, batch: int = 256
) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    parts = [
        np.asarray(model.score(task.histories[s : s + batch]), dtype=np.float32)
        for s in range(0, len(task), batch)
    ]
    return np.concatenate(parts), time.perf_counter() - started


def run_seed(
    split: Split,
    members: list[str],
    *,
    seed: int,
    profile: str,
    device: str = "cpu",
    samples: int = 200,
    clip: float | None = 100.0,
    save_ensemble: Path | None = None,
) -> dict[str, Any]:
    """Everything the report needs for one seed (see module docstring).

    ``save_ensemble``: also save the ensemble of this seed's members with the
    product's default selection (``EnsembleConfig``) there (e.g. for the
    serving fidelity benchmark).
    """
    valid, test = split.validation_task(), split.test_task()
    train: Interactions = split.train
    counts = train.item_counts()
    raw_valid: dict[str, np.ndarray] = {}
    raw_test: dict[str, np.ndarray] = {}
    out: dict[str, Any] = {"seed": seed, "models": {}, "ensembles": {}}
    per_user: dict[str, np.ndarray] = {}
    fitted: dict[str, Any] = {}
    for name in members:
        cls = get_model_class(name)
        model = cls(model_config(cls, profile))
        trainer = Trainer(trainer_config(cls, profile, seed=seed, device=device))
        report = model.fit(train, valid, trainer)
        raw_valid[name], _ = _score_all(model, valid)
        raw_test[name], scoring = _score_all(model, test)
        result = _evaluate_matrix(raw_test[name], test, split, seed)
        per_user[name] = result.full["ndcg@10"]
        out["models"][name] = {
            **_summary(result),
            "train_seconds": report.train_seconds,
            "cpu_seconds": report.cpu_seconds,
            "scoring_seconds": scoring,
            "epochs": report.epochs,
            "best_epoch": report.best_epoch,
            "stopped": report.stopped,
        }
        logger.info(
            "ablation seed %d %s: test ndcg@10 %.4f (train %.0fs)",
            seed, name, out["models"][name]["full"]["ndcg@10"], report.train_seconds,
        )  # fmt: skip
        if save_ensemble is not None:
            fitted[name] = model
        del model

    def blend_variant(names: list[str], objective: str) -> dict[str, Any]:
        started = time.perf_counter()
        sel = select_weights(
            {n: raw_valid[n] for n in names}, valid, counts, objective=objective,
            samples=samples, seed=seed, clip=clip,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        data = BlendData.build(
            {n: raw_test[n] for n in names}, test, counts, method=sel.normalisation
        )
        w = np.array([sel.weights[n] for n in names])
        beta = sel.popularity_correction
        result = _evaluate_matrix(data.blended(w, beta), test, split, seed)
        return {
            **_summary(result),
            "weights": sel.weights,
            "normalisation": sel.normalisation,
            "popularity_correction": beta,
            "long_tail_floor": sel.long_tail_floor,
            "validation_estimates": sel.estimates,
            "by_normalisation": sel.by_normalisation,
            "test_estimates": data.estimates(w, clip=clip, correction=beta),
            "selection_seconds": seconds,
            "_per_user": result.full["ndcg@10"],
            "_data": data,
            "_weights": w,
            "_selection": sel,
        }

    dr_variant = blend_variant(members, "dr")
    if save_ensemble is not None:
        from recommendations.engine.models.ensemble import Ensemble

        ensemble = Ensemble(members=tuple(members), samples=samples, clip=clip)
        ensemble.use_members(fitted, train, valid, seed=seed)  # the default's
        ensemble.save(save_ensemble)
        logger.info("saved the seed-%d ensemble to %s", seed, save_ensemble)
    ndcg_variant = blend_variant(members, "ndcg")
    per_user["ensemble"] = dr_variant["_per_user"]
    per_user[NDCG_ENSEMBLE] = ndcg_variant["_per_user"]
    # The gate: calibrated on validation, applied on test.
    genres = genre_matrix(train.item_features, train.n_items)
    sel = dr_variant["_selection"]
    valid_data = BlendData.build(raw_valid, valid, counts, method=sel.normalisation)
    beta = sel.popularity_correction
    gate = calibrate_gate(
        valid_data, dr_variant["_weights"],
        content_fallback_scores(valid.histories, genres, counts), correction=beta,
    )  # fmt: skip
    test_data = dr_variant["_data"]
    d_test = disagreement(
        test_data.stack, dr_variant["_weights"], exclude=test_data.exclude
    )
    on = np.asarray(gate.fires(d_test))
    fallback_test = content_fallback_scores(test.histories, genres, counts)
    gated = gated_ndcg(
        test_data, dr_variant["_weights"], fallback_test, on, correction=beta
    )
    out["gate"] = {
        **gate.as_dict(),
        "test_fire_rate": float(np.mean(on)),
        "test_ndcg_gated": float(gated.mean()),
        "test_ndcg_ungated": float(dr_variant["full"]["ndcg@10"]),
        "test_ndcg_fallback_only": float(
            gated_ndcg(test_data, dr_variant["_weights"], fallback_test,
                       np.ones_like(on), correction=beta).mean()
        ),
    }  # fmt: skip
    out["ensembles"]["ensemble (DR weights)"] = dr_variant
    out["ensembles"]["ensemble (NDCG weights)"] = ndcg_variant
    for left_out in members if len(members) > 2 else []:
        rest = [n for n in members if n != left_out]
        out["ensembles"][f"ensemble without {left_out}"] = blend_variant(rest, "dr")
    best_single = max(members, key=lambda n: out["models"][n]["full"]["ndcg@10"])
    out["best_single"] = best_single
    out["ensemble_vs_best_single"] = paired_bootstrap(
        per_user["ensemble"], per_user[best_single], seed=seed
    )
    out["ensemble_vs_best_single"]["ratio"] = float(
        np.mean(per_user["ensemble"]) / max(np.mean(per_user[best_single]), 1e-12)
    )
    out["_per_user"] = per_user
    return out


def ablation_study(
    data_spec: str,
    members: list[str],
    *,
    seeds: list[int],
    profile: str,
    device: str = "cpu",
    save_ensemble: Path | None = None,
    ties: str | None = None,
) -> dict[str, Any]:
    """:func:`run_ablation` on the leave-one-out split of ``data_spec``
    (same-second events ordered by ``ties``, see ``load_data``)."""
    for name in members:
        get_model_class(name)  # unknown names fail before any training
    data = load_data(data_spec, seed=seeds[0], ties=ties)
    split = make_split(data, "loo")
    return run_ablation(
        split, members, seeds=seeds, profile=profile, device=device,
        dataset={**data.describe(), "source": data_spec, "splits": split.sizes()},
        save_ensemble=save_ensemble,
    )  # fmt: skip


def run_ablation(
    split: Split,
    members: list[str],
    *,
    seeds: list[int],
    profile: str,
    device: str = "cpu",
    samples: int = 200,
    clip: float | None = 100.0,
    dataset: dict[str, Any] | None = None,
    save_ensemble: Path | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    runs = [
        run_seed(split, members, seed=s, profile=profile, device=device,
                 samples=samples, clip=clip,
                 save_ensemble=save_ensemble if s == seeds[0] else None)
        for s in seeds
    ]  # fmt: skip
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": dataset or {},
        "profile": profile,
        "seeds": seeds,
        "members": members,
        "runs": [_public(r) for r in runs],
        "ensemble_vs_best_single": _pooled([r["_per_user"] for r in runs]),
        "total_seconds": round(time.perf_counter() - started, 1),
        "_per_user": [r["_per_user"] for r in runs],
    }


def _pooled(per_user_runs: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Paired test on per-user NDCG@10 averaged over seeds: the DR ensemble
    (and, under ``ndcg_weights``, the NDCG-weighted one where the runs hold
    it) against the best single member."""
    per_user = {
        n: np.mean([r[n] for r in per_user_runs], axis=0)
        for n in per_user_runs[0]
        if all(n in r for r in per_user_runs)
    }
    singles = [n for n in per_user if not n.startswith("ensemble")]
    best = max(singles, key=lambda n: per_user[n].mean())

    def versus(name: str) -> dict[str, Any]:
        test: dict[str, Any] = dict(
            paired_bootstrap(per_user[name], per_user[best], seed=0)
        )
        test["ratio"] = float(per_user[name].mean() / max(per_user[best].mean(), 1e-12))
        return test

    pooled = versus("ensemble")
    pooled["best_single"] = best
    if NDCG_ENSEMBLE in per_user:
        pooled["ndcg_weights"] = versus(NDCG_ENSEMBLE)
    return pooled


def merge_reports(paths: Sequence[Path]) -> dict[str, Any]:
    """One report from ablation runs of other seeds on the same data and
    split (each ``<report>.json`` with its ``<report>.per_user.npz``): the
    runs side by side, the paired test recomputed over all their seeds."""
    parts = [json.loads(Path(p).with_suffix(".json").read_text()) for p in paths]
    first = parts[0]
    for part in parts[1:]:
        if part["dataset"] != first["dataset"] or part["members"] != first["members"]:
            raise ValueError("ablation runs of different data, split or members")
    per_user: list[dict[str, np.ndarray]] = []
    for p in paths:
        with np.load(_per_user_file(Path(p))) as npz:
            seeds = sorted({k.split("/", 1)[0] for k in npz.files}, key=int)
            per_user += [
                {k.split("/", 1)[1]: npz[k] for k in npz.files if k.startswith(f"{s}/")}
                for s in seeds
            ]
    return {
        **first,
        "created": max(part["created"] for part in parts),  # the last run's end
        "seeds": [s for part in parts for s in part["seeds"]],
        "runs": [r for part in parts for r in part["runs"]],
        "ensemble_vs_best_single": _pooled(per_user),
        "total_seconds": sum(part["total_seconds"] for part in parts),
        "command": "; ".join(part.get("command", "") for part in parts),
        "_per_user": per_user,
    }


def _per_user_file(report: Path) -> Path:
    return report.with_suffix(".per_user.npz")


def _public(run: dict[str, Any]) -> Any:
    """A seed's results as strict JSON data, without the private ``_`` keys
    (cached matrices)."""
    return to_jsonable(_without_private(run), finite=True)


def _without_private(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_private(v)
            for k, v in value.items()
            if not str(k).startswith("_")
        }
    if isinstance(value, list):
        return [_without_private(v) for v in value]
    return value


# ------------------------------------------------------------------ report
def _mean_over_runs(
    runs: list[dict[str, Any]], group: str, name: str, path: list[str]
) -> list[float]:
    values = []
    for r in runs:
        v: Any = r[group][name]
        for key in path:
            v = v[key]
        values.append(float(v))
    return values


def _cell(values: list[float], digits: int = 4) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    low, high = min(values), max(values)
    return f"{np.mean(values):.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def _floor_cell(estimates: dict[str, Any], floor: float | None) -> str:
    share = estimates.get("long_tail_share", {}).get("value")
    if share is None:
        return "–"
    return f"{share:.3f}" + ("" if floor is None else f" ({floor:.3f})")


def _ndcg_weights_text(pooled: dict[str, Any]) -> str:
    other = pooled.get("ndcg_weights")
    if not other:
        return ""
    return (
        f" Ensemble (NDCG weights) / best single = **{other['ratio']:.3f}**; "
        f"difference {other['mean_diff']:+.4f}, 95 % interval "
        f"[{other['low']:+.4f}, {other['high']:+.4f}]."
    )


def _ties_text(dataset: dict[str, Any]) -> str:
    if dataset.get("ties") == "item":
        return "by item id (`--ties item`, the peer figures' order)"
    if dataset.get("ties") == "random":
        return f"at random per user (seed {dataset.get('tie_seed')})"
    return "by item id (reports before issue 19)"


def markdown(results: dict[str, Any], chart: str | None) -> str:
    runs = results["runs"]
    ds = results.get("dataset", {})
    lines = [
        "# Ablation results",
        "",
        f"Generated {results['created']} by `python -m recommendations.engine "
        f"ablation` ({results.get('command', '')}). Dataset: {ds.get('source', '?')} "
        f"({ds.get('users', '?')} users, {ds.get('items', '?')} items, "
        f"{ds.get('interactions', '?')} interactions); same-second events "
        f"ordered {_ties_text(ds)}; temporal leave-one-out, "
        f"full ranking over every item outside the user's train + validation "
        f"history (ties pessimistic), test history = train + validation; "
        f"profile `{results['profile']}`; seeds {results['seeds']}. Cells: mean "
        "over seeds (min–max). Members are trained on their own; every ensemble "
        "row is blended from the same members' cached scores.",
        "",
        "| model | NDCG@10 | HR@10 | MRR@10 | NDCG@10 sampled | HR@10 sampled | "
        "coverage | Gini | long-tail share | train s | scoring s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for group in ("models", "ensembles"):
        for name in runs[0][group]:

            def val(*path: str, g: str = group, n: str = name) -> list[float]:
                return _mean_over_runs(runs, g, n, list(path))

            if group == "models":
                times = (
                    _cell(val("train_seconds"), 1),
                    _cell(val("scoring_seconds"), 2),
                )
            else:
                member_s = [
                    sum(
                        r["models"][m]["train_seconds"]
                        for m in r["ensembles"][name]["weights"]
                    )
                    + r["ensembles"][name]["selection_seconds"]
                    for r in runs
                ]
                times = (_cell(member_s, 1) + "*", "–")
            cells = [
                _cell(val("full", "ndcg@10")),
                _cell(val("full", "hr@10")),
                _cell(val("full", "mrr@10")),
                _cell(val("sampled", "ndcg@10")),
                _cell(val("sampled", "hr@10")),
                _cell(val("beyond", "coverage"), 3),
                _cell(val("beyond", "gini"), 3),
                _cell(val("beyond", "long_tail_share"), 3),
                *times,
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "\\* members' training time + weight selection (the members are trained "
        "once and shared by every ensemble row).",
        "",
        "95 % intervals over users (first seed) for NDCG@10: "
        + "; ".join(
            f"{n} {runs[0][g][n]['full_ci']['ndcg@10']['low']:.4f}–"
            f"{runs[0][g][n]['full_ci']['ndcg@10']['high']:.4f}"
            for g in ("models", "ensembles")
            for n in runs[0][g]
            if not n.startswith("ensemble without")
        )
        + ".",
        "",
        "## Chosen weights",
        "",
        "| seed | selection | normalisation | "
        + " | ".join(results["members"])
        + " | popularity correction β | validation long tail (floor) "
        "| validation DR | IPS | SNIPS | validation NDCG@10 |",
        "|---|---|---|" + "---|" * len(results["members"]) + "---|---|---|---|---|---|",
    ]
    for r in runs:
        for label in ("ensemble (DR weights)", "ensemble (NDCG weights)"):
            e = r["ensembles"][label]
            est = e["validation_estimates"]
            lines.append(
                f"| {r['seed']} | {label[10:-1]} | {e['normalisation']} | "
                + " | ".join(
                    f"{e['weights'].get(m, 0.0):.3f}" for m in results["members"]
                )
                + f" | {e.get('popularity_correction', 0.0):.3f}"
                + f" | {_floor_cell(est, e.get('long_tail_floor'))}"
                + f" | {est['dr']['value']:.3f} "
                f"[{est['dr']['low']:.3f}, {est['dr']['high']:.3f}]"
                f" | {est['ips']['value']:.3f} | {est['snips']['value']:.4f}"
                f" | {est['ndcg']['value']:.4f} |"
            )
    pooled = results["ensemble_vs_best_single"]
    lines += [
        "",
        "## Ensemble vs the best single model",
        "",
        "Best single model (mean test NDCG@10 over seeds): "
        f"**{pooled['best_single']}**. "
        f"Ensemble (DR weights) / best single = **{pooled['ratio']:.3f}**; paired "
        f"bootstrap of per-user NDCG@10 (averaged over seeds) difference "
        f"{pooled['mean_diff']:+.4f}, 95 % interval [{pooled['low']:+.4f}, "
        f"{pooled['high']:+.4f}].{_ndcg_weights_text(pooled)}",
        "",
        "## Uncertainty gate",
        "",
        "| seed | threshold (validation quantile) | fires on validation "
        "| fires on test | test NDCG@10 ungated | gated "
        "| content fallback for everyone |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        g = r["gate"]
        chosen = next(
            (
                row["quantile"]
                for row in g["table"]
                if row["fire_rate"] == g["fire_rate"]
            ),
            None,
        )
        thr = (
            "never" if g["threshold"] is None else f"{g['threshold']:.4f} (q {chosen})"
        )
        lines.append(
            f"| {r['seed']} | {thr} | {g['fire_rate']:.3f} | {g['test_fire_rate']:.3f} "
            f"| {g['test_ndcg_ungated']:.4f} | {g['test_ndcg_gated']:.4f} "
            f"| {g['test_ndcg_fallback_only']:.4f} |"
        )
    lines += [
        "",
        "Validation NDCG@10 at each candidate threshold (first seed): "
        + "; ".join(
            f"q {row['quantile']}: fires {row['fire_rate']:.2f}, NDCG {row['ndcg']:.4f}"
            for row in runs[0]["gate"]["table"]
        )
        + ".",
    ]
    if chart:
        lines += ["", f"![NDCG@10 per model]({chart})"]
    lines.append("")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    names = list(runs[0]["models"]) + list(runs[0]["ensembles"])
    groups = ["models"] * len(runs[0]["models"]) + ["ensembles"] * len(
        runs[0]["ensembles"]
    )
    means = [
        float(np.mean(_mean_over_runs(runs, g, n, ["full", "ndcg@10"])))
        for g, n in zip(groups, names, strict=True)
    ]
    colors = ["#4c78a8" if g == "models" else "#f58518" for g in groups]
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(names) + 1.2))
    ax.barh(names[::-1], means[::-1], color=colors[::-1])
    ax.set_xlabel("test NDCG@10 (full ranking, mean over seeds)")
    ax.set_title(
        f"{results.get('dataset', {}).get('source', '')}: members and ensembles"
    )
    for y, v in enumerate(means[::-1]):
        ax.text(v, y, f" {v:.4f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: dict[str, Any], out: Path) -> None:
    """The Markdown report, its chart, its JSON and (for :func:`merge_reports`)
    each seed's per-user test NDCG@10 in ``<report>.per_user.npz``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    chart = out.with_suffix(".png")
    plot(results, chart)
    out.write_text(markdown(results, chart.name))
    public = {k: v for k, v in results.items() if not k.startswith("_")}
    out.with_suffix(".json").write_text(json.dumps(public, indent=1))
    if "_per_user" in results:
        np.savez_compressed(
            _per_user_file(out),
            **{
                f"{seed}/{name}": values
                for seed, run in zip(
                    results["seeds"], results["_per_user"], strict=True
                )
                for name, values in run.items()
            },
        )
