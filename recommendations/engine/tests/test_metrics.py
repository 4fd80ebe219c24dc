"""Metric functions against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.engine.evaluation import (
    beyond_accuracy,
    gini,
    mean_ci,
    paired_bootstrap,
    paired_ttest,
    ranking_metrics,
    sample_negatives,
    target_ranks,
)


def test_single_target_ranks_and_metrics() -> None:
    scores = np.array([[0.9, 0.5, 0.7, 0.1, 0.3]])
    targets = np.array([[0, 0, 1, 0, 0]], dtype=bool)  # item 2 is second best
    m = ranking_metrics(scores, targets, ks=(1, 2, 5))
    assert m["hr@1"][0] == 0 and m["hr@2"][0] == 1
    assert m["ndcg@2"][0] == pytest.approx(1 / math.log2(3))
    assert m["mrr@5"][0] == pytest.approx(0.5)
    assert m["recall@2"][0] == 1


def test_excluded_items_do_not_count() -> None:
    scores = np.array([[0.9, 0.5, 0.7, 0.1, 0.3]])
    targets = np.array([[0, 0, 1, 0, 0]], dtype=bool)
    exclude = np.array([[1, 0, 0, 0, 0]], dtype=bool)  # the item above is history
    m = ranking_metrics(scores, targets, exclude, ks=(1,))
    assert m["ndcg@1"][0] == 1.0


def test_ties_count_against_the_target() -> None:
    scores = np.zeros((1, 4))  # all equal
    targets = np.array([[0, 1, 0, 0]], dtype=bool)
    _, ranks, n_cand = target_ranks(scores, targets)
    assert ranks.tolist() == [3] and n_cand.tolist() == [4]  # worst position
    m = ranking_metrics(scores, targets, ks=(3, 4))
    assert m["hr@3"][0] == 0 and m["hr@4"][0] == 1
    assert m["ndcg@4"][0] == pytest.approx(1 / math.log2(5))
    # NaN scores count as the lowest
    scores = np.array([[np.nan, 1.0, 0.0]])
    assert target_ranks(scores, np.array([[1, 0, 0]], bool))[1].tolist() == [2]


def test_k_larger_than_the_candidate_count() -> None:
    scores = np.array([[0.1, 0.2, 0.3]])
    targets = np.array([[1, 0, 0]], dtype=bool)  # worst of 3 candidates
    m = ranking_metrics(scores, targets, ks=(20,))
    assert m["hr@20"][0] == 1
    assert m["ndcg@20"][0] == pytest.approx(1 / math.log2(4))
    assert m["mrr@20"][0] == pytest.approx(1 / 3)


def test_several_targets_take_distinct_positions() -> None:
    scores = np.array([[0.9, 0.8, 0.8, 0.1]])
    targets = np.array([[0, 1, 1, 0]], dtype=bool)
    rows, ranks, _ = target_ranks(scores, targets)
    assert sorted(ranks.tolist()) == [1, 2]
    m = ranking_metrics(scores, targets, ks=(2, 3))
    assert m["recall@2"][0] == 0.5 and m["recall@3"][0] == 1.0
    idcg = 1 + 1 / math.log2(3)
    assert m["ndcg@3"][0] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / idcg)
    assert m["mrr@3"][0] == pytest.approx(0.5)


def test_metrics_are_vectorised_over_rows() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((50, 30))
    targets = sp.csr_matrix(
        (np.ones(50), (np.arange(50), rng.integers(0, 30, 50))), shape=(50, 30)
    )
    m = ranking_metrics(scores, targets, ks=(10,))
    for r in range(50):
        t = targets[r].indices[0]
        rank = int((scores[r] >= scores[r, t]).sum() - 1)
        assert m["hr@10"][r] == (rank < 10)


def test_sampled_negatives_are_unseen_fixed_and_sized() -> None:
    seen = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]], dtype=bool))
    a = sample_negatives(np.array([10, 11]), seen, n_negatives=3, seed=5)
    b = sample_negatives(np.array([10, 11]), seen, n_negatives=3, seed=5)
    assert (a != b).nnz == 0
    assert a.multiply(seen).nnz == 0
    assert np.diff(a.indptr).tolist() == [3, 3]
    few = sample_negatives(np.array([10]), seen[:1], n_negatives=100, seed=5)
    assert sorted(few.indices.tolist()) == [2, 3, 4, 5]


def test_beyond_accuracy_measures() -> None:
    assert gini(np.array([1, 1, 1, 1])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)
    recommended = np.array([[0, 1], [0, 1]])
    counts = np.array([100, 50, 1, 1, 1])
    b = beyond_accuracy(recommended, counts)
    assert b["coverage"] == pytest.approx(2 / 5)
    assert b["popularity_percentile"] == pytest.approx((1.0 + 0.8) / 2)
    assert b["long_tail_share"] == pytest.approx(0.5)


def test_paired_tests_find_a_real_difference_and_not_a_fake_one() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(400)
    better = a + 0.05 + rng.normal(0, 0.01, 400)
    boot = paired_bootstrap(better, a, seed=0)
    assert boot["low"] > 0 and boot["mean_diff"] == pytest.approx(0.05, abs=0.01)
    t = paired_ttest(better, a)
    assert t["p_value"] < 1e-6 and t["low"] > 0
    same = paired_bootstrap(a, a + rng.normal(0, 0.01, 400), seed=0)
    assert same["low"] < 0 < same["high"]
    ci = mean_ci(np.array([1.0, 2.0, 3.0]))
    assert ci["mean"] == 2.0 and ci["low"] < 2.0 < ci["high"]
