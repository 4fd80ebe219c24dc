"""Exploration: exact epsilon-greedy propensities, Monte-Carlo Thompson ones."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.engine.bandits.exploration import (
    ExplorationConfig,
    epsilon_greedy,
    epsilon_greedy_marginals,
    explore,
    thompson,
    thompson_marginals,
)
from recommendations.engine.data.interactions import History
from recommendations.engine.pipeline.ranking import RankedCandidates
from recommendations.engine.pipeline.reranking import Reranker
from recommendations.engine.tests.test_pipeline_reranking import table_meta


@pytest.mark.parametrize(
    ("n", "m", "eps"),
    [(1, 1, 0.3), (3, 6, 0.3), (10, 50, 0.1), (10, 10, 0.5), (5, 8, 1.0)],
)
def test_epsilon_greedy_marginals_sum_to_one_per_position(n, m, eps) -> None:
    mat = epsilon_greedy_marginals(n, m, eps).matrix()  # (m, n)
    assert mat.sum(axis=0) == pytest.approx(np.ones(min(n, m)))
    assert (mat.sum(axis=1) <= 1 + 1e-12).all()  # an item is shown at most once
    assert mat.sum() == pytest.approx(min(n, m))  # expected number shown


def test_epsilon_greedy_propensities_are_exact() -> None:
    n, m, eps, draws = 3, 6, 0.3, 30_000
    rng = np.random.default_rng(0)
    greedy = np.array([4, 1, 2])
    freq = np.zeros((m, n))
    logged = {}
    for _ in range(draws):
        s = epsilon_greedy(greedy, m, eps, rng)
        freq[s.picked, np.arange(n)] += 1
        for k, (a, p) in enumerate(zip(s.picked, s.propensities, strict=True)):
            logged[(int(a), k)] = p
    freq /= draws
    marg = epsilon_greedy_marginals(n, m, eps)
    rank = {4: 0, 1: 1, 2: 2}
    for (a, k), p in logged.items():
        expected = (
            marg.own if rank.get(a) == k
            else marg.other_greedy if a in rank else marg.outside
        )  # fmt: skip
        assert p == pytest.approx(expected, abs=1e-15)
        # the frequencies agree within 4 binomial sds
        assert freq[a, k] == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / draws))


def test_epsilon_zero_and_one_are_greedy_and_uniform() -> None:
    rng = np.random.default_rng(1)
    greedy = np.array([2, 0, 1])
    s = epsilon_greedy(greedy, 7, 0.0, rng)
    assert s.picked.tolist() == [2, 0, 1] and s.propensities.tolist() == [1.0] * 3
    s = epsilon_greedy(greedy, 7, 1.0, rng)
    assert s.propensities == pytest.approx(np.full(3, 1 / 7))
    assert len(set(s.picked.tolist())) == 3


def test_thompson_propensities_estimate_the_marginals() -> None:
    scores = np.array([1.0, 0.9, 0.5, 0.45, 0.1])
    rng = np.random.default_rng(2)
    truth = thompson_marginals(scores, 3, rng, scale=0.2, samples=200_000)
    for k in range(3):
        assert truth[:, k].sum() == pytest.approx(1.0)
    errors = []
    for _ in range(50):
        s = thompson(scores, 3, rng, scale=0.2, samples=4000)
        assert (s.propensities >= 1 / 4000).all() and (s.propensities <= 1).all()
        errors += list(s.propensities - truth[s.picked, np.arange(3)])
    # sd of one estimate <= 0.5 / sqrt(4000) = 0.008; bias <= 1 / 4000
    assert abs(np.mean(errors)) < 0.005 and np.max(np.abs(errors)) < 0.04


def test_thompson_with_a_tiny_scale_is_the_greedy_list() -> None:
    s = thompson(np.array([0.1, 0.9, 0.5]), 2, np.random.default_rng(3), scale=1e-9)
    assert s.picked.tolist() == [1, 2] and s.propensities.tolist() == [1.0, 1.0]


def test_explore_off_keeps_the_greedy_list() -> None:
    s = explore(
        ExplorationConfig(), np.zeros(5), np.array([3, 1]), np.random.default_rng()
    )
    assert s.picked.tolist() == [3, 1] and s.policy == "greedy"


def test_the_reranker_explores_only_when_asked() -> None:
    reranker = Reranker(table_meta())
    items = np.arange(11)
    cand = RankedCandidates(
        items, np.linspace(1, 0, 11), (frozenset({"ann"}),) * 11, "ensemble", False, 0.0
    )
    history = History(np.array([1, 0]))
    plain = reranker.rerank(history, cand, n=4)
    assert plain.policy == "greedy" and [r.propensity for r in plain.items] == [1.0] * 4
    cfg = ExplorationConfig(kind="epsilon_greedy", epsilon=1.0)
    explored = reranker.rerank(
        history, cand, n=4, exploration=cfg, rng=np.random.default_rng(0)
    )
    assert explored.policy == "epsilon_greedy"
    assert [r.propensity for r in explored.items] == pytest.approx([1 / 11] * 4)
    assert all(r.reason for r in explored.items)
    cfg = ExplorationConfig(kind="thompson", thompson_samples=64)
    ts = reranker.rerank(
        history, cand, n=4, exploration=cfg, rng=np.random.default_rng(0)
    )
    assert ts.policy == "thompson"
    assert all(1 / 64 <= r.propensity <= 1 for r in ts.items)


def test_the_pipeline_reports_propensities(tiny_data) -> None:
    from recommendations.engine.pipeline.pipeline import RecommendationRequest
    from recommendations.engine.tests.test_pipeline_e2e import build

    pipe, _ = build(tiny_data)
    history = tiny_data.history(3)
    plain = pipe.run(RecommendationRequest(history, n=8))
    assert plain.policy == "greedy" and plain.propensities.tolist() == [1.0] * 8
    cfg = ExplorationConfig(kind="epsilon_greedy", epsilon=0.5)
    a = pipe.run(RecommendationRequest(history, n=8, exploration=cfg, seed=11))
    b = pipe.run(RecommendationRequest(history, n=8, exploration=cfg, seed=11))
    assert a.policy == "epsilon_greedy" and a.items.tolist() == b.items.tolist()
    assert ((a.propensities > 0) & (a.propensities <= 1)).all()
    assert set(a.items.tolist()).isdisjoint(history.items.tolist())
