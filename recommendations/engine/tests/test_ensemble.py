"""The ensemble's parts: normalisation, DR weight search, the gate, the model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.engine.data import History, Split
from recommendations.engine.data.splits import EvalTask
from recommendations.engine.ensemble import (
    BlendData,
    calibrate_gate,
    choose_correction,
    disagreement,
    normalise,
    search_jointly,
    search_weights,
    select_weights,
)
from recommendations.engine.ensemble.selection import CORRECTIONS
from recommendations.engine.errors import ConfigError
from recommendations.engine.models import Recommender, get_model_class
from recommendations.engine.training import Trainer

ROOT = Path(__file__).resolve().parents[3]


# ------------------------------------------------------------ normalisation
def test_zscore_ignores_excluded_items_in_its_statistics() -> None:
    scores = np.array([[1.0, 2.0, 3.0, 100.0]])
    exclude = np.array([[False, False, False, True]])
    z = normalise(scores, "zscore", exclude)[0]
    kept = z[:3]
    assert kept.mean() == pytest.approx(0.0, abs=1e-6)
    assert kept.std() == pytest.approx(1.0, abs=1e-6)


def test_rank_normalisation_is_a_percentile_with_ties_averaged() -> None:
    scores = np.array([[0.1, 0.5, 0.5, 0.9, 5.0]])
    exclude = np.array([[False, False, False, False, True]])
    r = normalise(scores, "rank", exclude)[0]
    np.testing.assert_allclose(r[:4], [0.25, 0.625, 0.625, 1.0])
    assert r[4] == 0.0


def test_constant_rows_and_bad_method() -> None:
    assert np.all(normalise(np.ones((2, 5)), "zscore") == 0)
    with pytest.raises(ConfigError):
        normalise(np.ones((1, 3)), "softmax")  # type: ignore[arg-type]


# ------------------------------------------------------------ weight search
def _task(n_users: int, n_items: int, targets: np.ndarray) -> EvalTask:
    rows = np.arange(n_users)
    tgt = sp.csr_matrix((np.ones(n_users), (rows, targets)), shape=(n_users, n_items))
    exclude = sp.csr_matrix((n_users, n_items))
    return EvalTask(
        rows, [History(np.array([], dtype=np.int64))] * n_users, exclude, tgt
    )


def _planted(seed: int = 0) -> tuple[dict[str, np.ndarray], EvalTask, np.ndarray]:
    """``good`` ranks the held-out item first for most users, ``noise`` is random."""
    rng = np.random.default_rng(seed)
    users, items = 300, 80
    targets = rng.integers(0, items, users)
    good = rng.normal(size=(users, items))
    good[np.arange(users), targets] += 3.0
    noise = rng.normal(size=(users, items))
    counts = rng.integers(1, 200, items).astype(float)
    return {"good": good, "noise": noise}, _task(users, items, targets), counts


@pytest.mark.parametrize("objective", ["dr", "ips", "snips", "ndcg"])
def test_search_puts_the_weight_on_the_informative_member(objective: str) -> None:
    raw, task, counts = _planted()
    selection = select_weights(raw, task, counts, objective=objective, samples=50)
    assert selection.weights["good"] > 0.9
    assert sum(selection.weights.values()) == pytest.approx(1.0)
    assert selection.estimates["ndcg"]["value"] > 0.5


def test_objective_matches_the_estimators_and_refinement_never_hurts() -> None:
    raw, task, counts = _planted(1)
    data = BlendData.build(raw, task, counts)
    w = np.array([0.3, 0.7])
    est = data.estimates(w, clip=100.0)
    for name in ("dr", "ips", "snips", "ndcg"):
        assert data.objective(w, name, clip=100.0) == pytest.approx(est[name]["value"])
    result = search_weights(data, "dr", samples=10, seed=3)
    assert result.value >= result.start_value
    assert np.all(result.weights >= 0) and result.weights.sum() == pytest.approx(1)


def test_dr_value_by_hand_for_two_users() -> None:
    # Two users, three items; one member. User 0's target is its top item.
    raw = {"m": np.array([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0]])}
    task = _task(2, 3, np.array([0, 0]))
    counts = np.array([10.0, 5.0, 5.0])
    data = BlendData.build(raw, task, counts, propensity_power=1.0)
    # Propensity of item 0 = (10 / 10) ** 1 = 1. Top-1 slate: user 0 -> item 0
    # (hit), user 1 -> item 1 (miss). rhat = (count + 1) / sum(count + 1).
    rhat = np.array([11.0, 6.0, 6.0]) / 23.0
    expected = np.mean([rhat[0] + 1.0 * (1 - rhat[0]), rhat[1] + 0.0])
    assert data.objective(np.array([1.0]), "dr", k=1) == pytest.approx(expected)


def _popular_bias() -> tuple[dict[str, np.ndarray], EvalTask, np.ndarray]:
    """``head`` ranks popular items high, ``tail`` also likes niche items."""
    rng = np.random.default_rng(4)
    users, items = 200, 50
    counts = np.arange(items, 0, -1).astype(float) ** 2  # item 0 most popular
    targets = rng.integers(0, items, users)
    head = 0.3 * np.tile(np.log1p(counts), (users, 1)) + rng.normal(size=(users, items))
    head[np.arange(users), targets] += 1.5
    tail = rng.normal(size=(users, items))
    tail[np.arange(users), targets] += 1.0
    return {"head": head, "tail": tail}, _task(users, items, targets), counts


def test_popularity_correction_lifts_the_blend_to_the_long_tail_floor() -> None:
    raw, task, counts = _popular_bias()
    data = BlendData.build(raw, task, counts)
    w = np.array([1.0, 0.0])
    assert data.long_tail_share(w, 0.3) > data.long_tail_share(w, 0.0)
    floor = data.long_tail_share(np.array([0.0, 1.0]))
    chosen = choose_correction(data, w, floor, "ndcg")
    assert chosen.meets_floor and chosen.long_tail_share >= floor
    # The smallest beta that reaches the floor, not the one with the best value.
    smaller = [r for r in chosen.table if r["beta"] < chosen.beta]
    assert all(r["long_tail_share"] < floor for r in smaller)
    # An unreachable floor keeps the beta with the most long tail.
    assert not choose_correction(data, w, 1.01, "ndcg").meets_floor


def test_selection_meets_the_best_members_long_tail_or_turns_it_off() -> None:
    raw, task, counts = _popular_bias()
    sel = select_weights(raw, task, counts, objective="ndcg", samples=20)
    data = BlendData.build(raw, task, counts, method=sel.normalisation)
    w = np.array([sel.weights[n] for n in data.names])
    share = data.long_tail_share(w, sel.popularity_correction)
    assert sel.long_tail_floor is not None and share >= sel.long_tail_floor
    assert sel.estimates["long_tail_share"]["value"] == pytest.approx(share)
    off = select_weights(raw, task, counts, objective="ndcg", samples=20,
                         corrections=(0.0,))  # fmt: skip
    assert off.popularity_correction == 0.0 and off.long_tail_floor is None


def test_joint_search_keeps_the_best_blend_that_meets_the_floor() -> None:
    raw, task, counts = _popular_bias()
    data = BlendData.build(raw, task, counts)
    floor = data.long_tail_share(np.array([0.0, 1.0]))
    result, chosen = search_jointly(data, floor, "dr", samples=20)
    assert chosen.meets_floor and chosen.long_tail_share >= floor
    assert {r["beta"] for r in chosen.table} == set(CORRECTIONS)
    feasible = [r for r in chosen.table if r["long_tail_share"] >= floor]
    assert chosen.value == max(r["value"] for r in feasible)
    # The value is the blend's under its own correction, and the searches add up.
    assert chosen.value == pytest.approx(
        data.objective(result.weights, "dr", correction=chosen.beta)
    )
    assert result.evaluated > search_weights(data, "dr", samples=20).evaluated
    # It never does worse than fixing the weights at beta = 0 first.
    kw: dict[str, Any] = {"objective": "dr", "samples": 20}
    kw["normalisations"] = ("zscore",)
    after = select_weights(raw, task, counts, **kw)
    joint = select_weights(raw, task, counts, correction_search="joint", **kw)
    assert joint.value >= after.value
    assert joint.settings["correction_search"] == "joint"
    with pytest.raises(ConfigError, match="correction search"):
        select_weights(raw, task, counts, correction_search="both")  # type: ignore[arg-type]


# --------------------------------------------------------------------- gate
def test_disagreement_is_zero_when_members_agree() -> None:
    z = np.random.default_rng(0).normal(size=(1, 4, 30))
    same = np.concatenate([z, z])
    assert np.allclose(disagreement(same, np.array([0.5, 0.5]), candidates=10), 0)
    other = np.concatenate([z, -z])
    assert np.all(disagreement(other, np.array([0.5, 0.5]), candidates=10) > 0.1)


def test_gate_fires_where_the_fallback_is_better() -> None:
    rng = np.random.default_rng(0)
    users, items = 200, 50
    targets = rng.integers(0, items, users)
    a = rng.normal(size=(users, items))
    b = a.copy()
    conflict = np.arange(users) < 40  # members disagree, and both are wrong
    b[conflict] = -a[conflict]
    a[~conflict, targets[~conflict]] += 4.0
    b[~conflict, targets[~conflict]] += 4.0
    fallback = rng.normal(size=(users, items))
    fallback[np.arange(users), targets] += 4.0
    data = BlendData.build(
        {"a": a, "b": b}, _task(users, items, targets), np.ones(items)
    )
    gate = calibrate_gate(data, np.array([0.5, 0.5]), fallback, candidates=20)
    assert np.isfinite(gate.threshold)
    assert 0.1 < gate.fire_rate <= 0.5
    useless = calibrate_gate(
        data, np.array([0.5, 0.5]), -fallback, candidates=20
    )  # a fallback that is always wrong: never fire
    assert np.isinf(useless.threshold) and useless.fire_rate == 0.0


# -------------------------------------------------------------------- model
MEMBERS = ("pop", "itemknn", "ease")


@pytest.fixture(scope="module")
def ensemble(tiny_split: Split) -> Recommender:
    model = get_model_class("ensemble")(members=MEMBERS, samples=30)
    model.fit(tiny_split.train, tiny_split.validation_task(), Trainer(seed=1))
    return model


def test_zero_weight_members_are_never_scored(tiny_split: Split) -> None:
    model = get_model_class("ensemble")(
        members=MEMBERS, weights={"pop": 0.0, "itemknn": 0.0, "ease": 1.0}
    )
    model.fit(tiny_split.train, tiny_split.validation_task(), Trainer(seed=1))

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("a zero-weight member was scored")

    model.members["pop"].score = boom  # type: ignore[method-assign]
    model.members["itemknn"].score = boom  # type: ignore[method-assign]
    histories = tiny_split.test_task().histories[:4]
    expected = normalise(
        model.members["ease"].score(histories),
        model.normalisation,
        _history_mask(histories, model.n_items),
    )
    np.testing.assert_allclose(model.score(histories), expected, rtol=1e-5)


def _history_mask(histories: list[History], n_items: int) -> np.ndarray:
    mask = np.zeros((len(histories), n_items), dtype=bool)
    for b, h in enumerate(histories):
        mask[b, h.items] = True
    return mask


def test_candidate_scoring_matches_full_scoring(ensemble: Recommender) -> None:
    h = History(np.array([1, 5, 7]))
    full = ensemble.score([h])[0]
    unseen = np.setdiff1d(np.arange(ensemble.n_items), h.items)
    scores, spread = ensemble.score_candidates(h, unseen)
    if ensemble.normalisation == "zscore":
        np.testing.assert_allclose(scores, full[unseen], rtol=1e-4, atol=1e-5)
    assert np.argsort(-scores)[0] == np.argsort(-full[unseen])[0]
    assert spread >= 0.0


def test_weights_and_gate_survive_save_and_load(
    ensemble: Recommender, tmp_path: Path
) -> None:
    ensemble.save(tmp_path / "e")
    loaded = Recommender.load(tmp_path / "e")
    histories = [History(np.array([0, 3])), History(np.array([], dtype=np.int64))]
    np.testing.assert_allclose(loaded.score(histories), ensemble.score(histories))
    assert loaded.weight_dict() == pytest.approx(ensemble.weight_dict())
    assert loaded.gate.threshold == ensemble.gate.threshold
    assert loaded.popularity_correction == ensemble.popularity_correction


def test_fit_info_records_the_selection(ensemble: Recommender) -> None:
    info = ensemble.fit_info
    assert set(info["weights"]) == set(MEMBERS)
    assert info["selection"]["objective"] == "ndcg"  # the default (issue 19)
    assert set(info["selection"]["by_normalisation"]) == {"zscore", "rank"}
    assert info["gate"]["table"]


def test_unknown_member_and_missing_members_are_clear_errors(tiny_split: Split) -> None:
    cls = get_model_class("ensemble")
    with pytest.raises(ValueError, match="unknown member"):
        cls(members=("pop", "nope"))
    model = cls(members=MEMBERS)
    with pytest.raises(ConfigError, match="not fitted: ease"):
        model.use_members(
            {"pop": object(), "itemknn": object()}, tiny_split.train, None
        )


@pytest.mark.slow
def test_cli_ablation_and_debias_end_to_end(tmp_path: Path) -> None:
    def run(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "recommendations.engine", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]

    run(
        "ablation", "--data", "synthetic", "--models", ",".join(MEMBERS),
        "--seeds", "1", "--out", str(tmp_path / "ABLATION.md"),
    )  # fmt: skip
    report = (tmp_path / "ABLATION.md").read_text()
    assert "ensemble (DR weights)" in report and "ensemble without ease" in report
    assert (tmp_path / "ABLATION.png").stat().st_size > 1000
    results = json.loads((tmp_path / "ABLATION.json").read_text())
    assert results["ensemble_vs_best_single"]["best_single"] in MEMBERS
    run(
        "debias", "--data", "synthetic", "--members", ",".join(MEMBERS),
        "--out", str(tmp_path / "weights.json"),
    )  # fmt: skip
    weights = json.loads((tmp_path / "weights.json").read_text())
    assert sum(weights["weights"].values()) == pytest.approx(1.0)
    assert weights["objective"] == "ndcg"
    assert weights["estimates"]["ndcg"]["value"] == pytest.approx(
        weights["estimated_value"]
    )
    assert "dr" in weights["estimates"]  # every estimate, beside the objective


def test_ablation_runs_of_other_seeds_merge_into_one_report(
    tiny_split: Split, tmp_path: Path
) -> None:
    from recommendations.engine.evaluation.ablation import (
        merge_reports,
        run_ablation,
        write_report,
    )

    dataset = {**tiny_split.full.describe(), "source": "tiny"}
    paths = []
    for seed in (1, 2):
        results = run_ablation(
            tiny_split, list(MEMBERS), seeds=[seed], profile="quick",
            samples=20, dataset=dataset,
        )  # fmt: skip
        paths.append(tmp_path / f"seed{seed}.md")
        write_report(results, paths[-1])
    merged = merge_reports(paths)
    assert merged["seeds"] == [1, 2] and len(merged["runs"]) == 2
    pooled = merged["ensemble_vs_best_single"]
    assert pooled["best_single"] in MEMBERS and pooled["low"] <= pooled["high"]
    assert pooled["ndcg_weights"]["low"] <= pooled["ndcg_weights"]["high"]
    write_report(merged, tmp_path / "merged.md")
    text = (tmp_path / "merged.md").read_text()
    assert "seeds [1, 2]" in text and "at random per user (seed 0)" in text
    assert "_per_user" not in json.loads((tmp_path / "merged.json").read_text())
    with pytest.raises(ValueError, match="different data"):
        other = {**results, "dataset": {**dataset, "ties": "item"}}
        write_report(other, tmp_path / "other.md")
        merge_reports([paths[0], tmp_path / "other.md"])
