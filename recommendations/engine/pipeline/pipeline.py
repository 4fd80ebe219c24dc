"""The per-request pipeline: retrieval -> ranking -> reranking.

:class:`RecommendationPipeline` only composes the three stages and times
them; every stage is pure computation on in-memory objects (models,
indexes, metadata are loaded by the caller), so one pipeline object serves
concurrent requests and a hot reload is "build a new pipeline, swap the
reference".
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from recommendations.engine.bandits.exploration import ExplorationConfig
from recommendations.engine.data.interactions import History
from recommendations.engine.pipeline.ranking import Ranker
from recommendations.engine.pipeline.reranking import Boost, Reranker
from recommendations.engine.pipeline.retrieval import Retriever


@dataclass(frozen=True)
class RecommendationRequest:
    """One request: the user's current history (dense item indices, oldest first)."""

    history: History
    n: int = 10
    diversity: float | None = None
    """MMR diversity in [0, 1]; ``None`` = the reranker's configured default."""
    exclude_seen: bool = True
    exclude: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Extra items never to recommend (e.g. the movie a "similar" page shows)."""
    user_vector: np.ndarray | None = None
    """Precomputed user vector for the ANN source (else the source computes it)."""
    exploration: ExplorationConfig | None = None
    """Exploration in the reranker (``None``: the greedy list, propensities 1)."""
    seed: int | None = None
    """Seed of the exploration draw (``None``: fresh entropy)."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")


@dataclass(frozen=True)
class PipelineResult:
    """The served list and how it was produced."""

    items: np.ndarray  # (n,) int64, dense item indices, best first
    scores: np.ndarray  # (n,) boosted relevance
    reasons: tuple[str, ...]
    boosts: tuple[tuple[Boost, ...], ...]
    anchors: tuple[int | None, ...]  # history item each reason names
    sources: tuple[frozenset[str], ...]  # retrieval sources per item
    fallback_used: bool  # popularity fallback in retrieval or content ranking
    gate_fired: bool  # ensemble disagreement above the threshold
    scorer: str  # "ensemble" | "content" | "retrieval_order"
    disagreement: float | None
    failed_sources: Mapping[str, str]
    errors: tuple[str, ...]
    n_candidates: int
    timings_ms: Mapping[str, float]  # retrieval, ranking, reranking, total
    propensities: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(n,) P(item at its position) under the serving policy (1: greedy)."""
    policy: str = "greedy"
    candidates: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """(C,) the retrieval candidates the list was ranked from (dense indices)."""

    def __len__(self) -> int:
        return len(self.items)


class RecommendationPipeline:
    """Retrieval -> ranking -> reranking, with per-stage timings."""

    def __init__(
        self, retriever: Retriever, ranker: Ranker, reranker: Reranker
    ) -> None:
        self.retriever = retriever
        self.ranker = ranker
        self.reranker = reranker

    def run(self, request: RecommendationRequest) -> PipelineResult:
        t0 = time.perf_counter()
        candidates = self.retriever.retrieve(
            request.history,
            user_vector=request.user_vector,
            exclude_seen=request.exclude_seen,
            exclude=request.exclude,
        )
        t1 = time.perf_counter()
        ranked = self.ranker.rank(request.history, candidates)
        t2 = time.perf_counter()
        reranked = self.reranker.rerank(
            request.history, ranked, request.n, diversity=request.diversity,
            exploration=request.exploration,
            rng=np.random.default_rng(request.seed) if request.exploration else None,
        )  # fmt: skip
        t3 = time.perf_counter()
        rows = reranked.items
        errors = tuple(f"{k}: {v}" for k, v in candidates.failed.items())
        if ranked.error:
            errors += (f"ranking: {ranked.error}",)
        return PipelineResult(
            items=np.array([r.item for r in rows], dtype=np.int64),
            scores=np.array([r.score for r in rows], dtype=np.float64),
            reasons=tuple(r.reason for r in rows),
            boosts=tuple(r.boosts for r in rows),
            anchors=tuple(r.anchor for r in rows),
            sources=tuple(r.sources for r in rows),
            fallback_used=candidates.fallback_used or ranked.scorer != "ensemble",
            gate_fired=ranked.gate_fired,
            scorer=ranked.scorer,
            disagreement=ranked.disagreement,
            failed_sources=dict(candidates.failed),
            errors=errors,
            n_candidates=len(candidates),
            timings_ms={
                "retrieval": 1e3 * (t1 - t0),
                "ranking": 1e3 * (t2 - t1),
                "reranking": 1e3 * (t3 - t2),
                "total": 1e3 * (t3 - t0),
            },
            propensities=np.array([r.propensity for r in rows], dtype=np.float64),
            policy=reranked.policy,
            candidates=np.asarray(candidates.items, dtype=np.int64),
        )
