"""Each fairness measure against an exact oracle on tiny inputs.

The exposure oracles are RecBole's own code (recbole/evaluator/metrics.py,
v1.2: ``GiniIndex.get_gini``, ``ItemCoverage.get_coverage``,
``TailPercentage.get_tail``) transcribed line by line; calibration is worked
out by hand from Steck (2018)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from analytics import fairness

REC = np.array([[0, 1, 2], [0, 1, 3], [0, 4, 1]])  # 3 users, K = 3, 6 items
N_ITEMS = 6
COUNTS = np.array([50, 40, 3, 3, 1, 0])  # training popularity


def recbole_gini(item_matrix, num_items):
    item_count = dict(Counter(item_matrix.flatten()))
    sorted_count = np.array(sorted(item_count.values()))
    num_recommended_items = sorted_count.shape[0]
    total_num = item_matrix.shape[0] * item_matrix.shape[1]
    idx = np.arange(num_items - num_recommended_items + 1, num_items + 1)
    gini_index = np.sum((2 * idx - num_items - 1) * sorted_count) / total_num
    gini_index /= num_items
    return gini_index


def recbole_coverage(item_matrix, num_items):
    unique_count = np.unique(item_matrix).shape[0]
    return unique_count / num_items


def recbole_tail(item_matrix, count_items, tail_ratio):
    count_items = sorted(count_items.items(), key=lambda kv: (kv[1], kv[0]))
    cut = max(int(len(count_items) * tail_ratio), 1)
    count_items = count_items[:cut]
    tail_items = [item for item, cnt in count_items]
    value = np.zeros_like(item_matrix)
    for i in range(item_matrix.shape[0]):
        row = item_matrix[i, :]
        for j in range(row.shape[0]):
            value[i][j] = 1 if row[j] in tail_items else 0
    return value


def test_exposure_gini_is_recboles():
    assert fairness.exposure_gini(REC, N_ITEMS) == pytest.approx(
        recbole_gini(REC, N_ITEMS)
    )
    # by hand: exposures sorted [0,1,1,1,3,3], sum 9:
    # sum((2i-7) x) = (-1)(1) + (1)(1) + (3)(1) + (5)(3) + (7)(3) ... over i=2..6
    by_hand = ((-3) * 1 + (-1) * 1 + 1 * 1 + 3 * 3 + 5 * 3) / (6 * 9)
    assert fairness.exposure_gini(REC, N_ITEMS) == pytest.approx(by_hand)
    assert fairness.exposure_gini(np.array([[0], [1], [2], [3], [4], [5]]), 6) == 0.0


def test_coverage_is_recboles():
    assert fairness.item_coverage(REC, N_ITEMS) == recbole_coverage(REC, N_ITEMS)
    assert fairness.item_coverage(REC, N_ITEMS) == pytest.approx(5 / 6)


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.8])
def test_long_tail_share_is_recboles(ratio):
    oracle = recbole_tail(REC, dict(enumerate(COUNTS.tolist())), ratio)
    ours = fairness.tail_share(REC, fairness.tail_mask(COUNTS, ratio))
    assert ours == pytest.approx(oracle.mean(axis=1))
    # ratio 0.5: items 5, 4 and 2 (count 3 ties with 3, item 2 first)
    if ratio == 0.5:
        assert fairness.tail_mask(COUNTS, 0.5).tolist() == [
            False, False, True, False, True, True,
        ]  # fmt: skip


def test_calibration_kl_follows_steck_with_alpha_001():
    genres = {0: ["drama"], 1: ["drama", "comedy"], 2: ["comedy"], 3: ["horror"]}
    # history: p = drama 3/4, comedy 1/4; list [3]: q = horror 1
    kl = fairness.calibration_kl([0, 1], [3], genres)
    p = {"drama": 0.75, "comedy": 0.25}
    expected = sum(pg * math.log(pg / (0.99 * 0 + 0.01 * pg)) for pg in p.values())
    assert kl == pytest.approx(expected)  # = log(100): nothing of p is shown
    assert kl == pytest.approx(math.log(100))
    # a list with the history's exact distribution is perfectly calibrated
    assert fairness.calibration_kl([0, 1], [1, 0], genres) == pytest.approx(0.0)
    # list = drama 1/2, comedy 1/2 (item 1 only)
    q = {"drama": 0.5, "comedy": 0.5}
    expected = sum(p[g] * math.log(p[g] / (0.99 * q[g] + 0.01 * p[g])) for g in p)
    assert fairness.calibration_kl([0, 1], [1], genres) == pytest.approx(expected)
    assert fairness.calibration_kl([9], [1], genres) is None  # no genre known


def test_exposure_by_popularity_group():
    groups = fairness.popularity_groups(COUNTS, 3)
    # least popular first: items 5, 4 | 2, 3 | 1, 0
    assert groups.tolist() == [2, 2, 1, 1, 0, 0]
    share = fairness.exposure_by_group(REC, groups, 3)
    assert share == pytest.approx([1 / 9, 2 / 9, 6 / 9])


def test_metrics_per_group_with_intervals_and_the_largest_gap():
    ndcg = np.array([1.0, 0.5, 0.0, 0.0, 0.25])
    out = fairness.by_group({"ndcg@10": ndcg}, ["a", "a", "b", "b", "c"], min_users=2)
    a = out["groups"]["a"]["ndcg@10"]
    assert a["mean"] == pytest.approx(0.75) and a["n"] == 2
    # t interval, 1 degree of freedom: 12.706 * sd / sqrt(2)
    half = 12.7062047 * np.std([1.0, 0.5], ddof=1) / math.sqrt(2)
    assert a["high"] - a["mean"] == pytest.approx(half, rel=1e-5)
    # "c" has one user (< min_users): reported, but not in the gap
    assert out["groups"]["c"]["users"] == 1
    assert out["gaps"]["ndcg@10"] == {"gap": 0.75, "best": "a", "worst": "b"}


def test_thresholds_raise_alerts_only_when_crossed():
    limits = {
        "max_gini": 0.5, "min_coverage": 0.1, "max_ndcg_gap": 0.2,
        "max_calibration_kl": 1.0,
    }  # fmt: skip
    metrics = {
        "exposure_gini": 0.6,
        "coverage": 0.1,
        "calibration_kl": {"mean": 0.4},
        "by_group": {
            "gender": {"gaps": {"ndcg@10": {"gap": 0.3, "best": "a", "worst": "b"}}},
            "age_band": {"gaps": {"ndcg@10": None}},
        },
    }
    alerts = fairness.alerts_for(metrics, limits)
    assert [a["metric"] for a in alerts] == ["exposure_gini", "ndcg@10 gap (gender)"]
    metrics["exposure_gini"] = 0.5
    metrics["by_group"]["gender"]["gaps"]["ndcg@10"]["gap"] = 0.2
    assert fairness.alerts_for(metrics, limits) == []


def recbole_ndcg_hr(pos_index: np.ndarray, pos_len: np.ndarray, k: int):
    """RecBole's NDCG.metric_info and Hit.metric_info at ``k``."""
    len_rank = np.full_like(pos_len, pos_index.shape[1])
    idcg_len = np.where(pos_len > len_rank, len_rank, pos_len)
    iranks = np.zeros_like(pos_index, dtype=np.float64)
    iranks[:, :] = np.arange(1, pos_index.shape[1] + 1)
    idcg = np.cumsum(1.0 / np.log2(iranks + 1), axis=1)
    for row, idx in enumerate(idcg_len):
        idcg[row, idx:] = idcg[row, idx - 1]
    ranks = np.zeros_like(pos_index, dtype=np.float64)
    ranks[:, :] = np.arange(1, pos_index.shape[1] + 1)
    dcg = np.cumsum(np.where(pos_index, 1.0 / np.log2(ranks + 1), 0), axis=1)
    hit = np.cumsum(pos_index, axis=1) > 0
    return (dcg / idcg)[:, k - 1], hit[:, k - 1].astype(float)


def test_ndcg_and_hr_per_user_match_recboles_formulas():
    """The per-user NDCG@10 / HR@10 the audit groups come from the engine's
    ranking; on a tiny score matrix they equal RecBole's."""
    from recommendations.engine.evaluation.metrics import ranking_metrics

    scores = np.array(
        [
            [0.9, 0.8, 0.1, 0.7] + [0.0] * 11,  # target 2: rank 4 of 15
            [0.1, 0.2, 0.3, 0.4] + [0.5] * 11,  # target 0: last
            [0.9, 0.1, 0.2, 0.3] + [0.0] * 11,  # target 0: first
        ]
    )
    targets = np.zeros_like(scores, dtype=bool)
    targets[0, 2] = targets[1, 0] = targets[2, 0] = True
    ours = ranking_metrics(scores, targets, ks=(10,))
    order = np.argsort(-scores, axis=1, kind="stable")
    pos_index = np.take_along_axis(targets, order, axis=1)
    ndcg, hr = recbole_ndcg_hr(pos_index, np.ones(3, dtype=np.int64), 10)
    assert ours["ndcg@10"] == pytest.approx(ndcg)
    assert ours["hr@10"] == pytest.approx(hr)
    assert ndcg[0] == pytest.approx(1 / math.log2(5))
