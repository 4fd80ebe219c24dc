"""Ranking stage: ensemble order, the uncertainty gate, failures fall back."""

from __future__ import annotations

import numpy as np

from recommendations.engine.data.interactions import History
from recommendations.engine.pipeline.content import ContentModel
from recommendations.engine.pipeline.ranking import (
    ContentFallbackScorer,
    Ranker,
    RankingConfig,
)
from recommendations.engine.pipeline.retrieval import Candidates

CANDS = Candidates(
    np.array([5, 6, 7]), tuple(frozenset({"ann"}) for _ in range(3)), {}, False
)
HISTORY = History(np.array([1]))


def ensemble(disagreement: float):
    # ensemble prefers 7 > 6 > 5
    return lambda h, c: (c.astype(float), disagreement)


def fallback(h, c):
    return -c.astype(float)  # content prefers 5 > 6 > 7


def test_ensemble_order_below_the_threshold() -> None:
    ranker = Ranker(ensemble(0.2), fallback, RankingConfig(gate_threshold=0.3))
    out = ranker.rank(HISTORY, CANDS)
    assert out.items.tolist() == [7, 6, 5] and out.scores.tolist() == [7.0, 6.0, 5.0]
    assert out.scorer == "ensemble" and not out.gate_fired
    assert out.disagreement == 0.2
    # exactly at the threshold is not above it
    at = Ranker(ensemble(0.3), fallback, RankingConfig(gate_threshold=0.3))
    assert not at.rank(HISTORY, CANDS).gate_fired


def test_gate_switches_to_the_content_fallback() -> None:
    ranker = Ranker(ensemble(0.9), fallback, RankingConfig(gate_threshold=0.3))
    out = ranker.rank(HISTORY, CANDS)
    assert out.gate_fired and out.scorer == "content"
    assert out.items.tolist() == [5, 6, 7] and out.disagreement == 0.9
    nan = Ranker(ensemble(float("nan")), fallback, RankingConfig(gate_threshold=0.3))
    assert nan.rank(HISTORY, CANDS).gate_fired
    never = Ranker(ensemble(99.0), fallback, RankingConfig(gate_threshold=None))
    assert not never.rank(HISTORY, CANDS).gate_fired


def test_scorer_failures_fall_back_and_are_reported() -> None:
    def boom(h, c):
        raise RuntimeError("onnx session died")

    out = Ranker(boom, fallback).rank(HISTORY, CANDS)
    assert out.scorer == "content" and out.items.tolist() == [5, 6, 7]
    assert out.error == "RuntimeError: onnx session died" and not out.gate_fired
    wrong = Ranker(lambda h, c: (np.zeros(2), 0.0), fallback).rank(HISTORY, CANDS)
    assert wrong.scorer == "content" and "expected (3,)" in wrong.error
    both = Ranker(boom, lambda h, c: 1 / 0).rank(HISTORY, CANDS)
    assert both.scorer == "retrieval_order" and both.items.tolist() == [5, 6, 7]
    assert "ZeroDivisionError" in both.error


def test_content_fallback_scorer() -> None:
    content = ContentModel.fit(
        ["space jedi", "space jedi empire", "war romance", "x y"]
    )
    scorer = ContentFallbackScorer(content, popularity=np.array([1, 2, 50, 100]))
    scores = scorer(History(np.array([0])), np.array([1, 2, 3]))
    assert scores[0] > 0.3 and scores[1] < 0.01 and scores[2] < 0.01
    assert scores[2] > scores[1]  # popularity breaks the tie between unrelated items
    cold = scorer(History(np.zeros(0)), np.array([0, 3]))
    assert cold.tolist() == [0.01, 1.0]
