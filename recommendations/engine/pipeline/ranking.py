"""Stage 2, ranking: the ensemble scores the candidates, an uncertainty gate guards it.

The ensemble (``recommendations/engine/ensemble/``) plugs in as a
:data:`ScoreFn`: ``score(history, candidates) -> (scores (C,), disagreement)``
where ``disagreement`` is its own measure of how much its members disagree on
this user. When the disagreement is above ``RankingConfig.gate_threshold``
(or not a finite number), the candidates are ranked by the content fallback
instead and the output says ``gate_fired=True``. A scorer that raises, or
returns the wrong shape, also falls back (``error`` says why); this stage never
raises for a model failure. If the fallback itself fails the retrieval order
is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recommendations.engine.data.interactions import History
from recommendations.engine.pipeline.content import ContentModel
from recommendations.engine.pipeline.retrieval import Candidates, recent_items

logger = logging.getLogger(__name__)

ScoreFn = Callable[[History, np.ndarray], tuple[np.ndarray, float]]
"""``(history, candidates (C,)) -> (scores (C,), disagreement)``, higher = better."""
FallbackFn = Callable[[History, np.ndarray], np.ndarray]
"""``(history, candidates (C,)) -> scores (C,)``."""


class RankingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    gate_threshold: float | None = Field(None, ge=0)
    """Disagreement above this ranks by the content fallback; ``None`` = never."""


@dataclass(frozen=True)
class RankedCandidates:
    """Ranking output, best first; ``scores`` are the ranker's raw scores."""

    items: np.ndarray  # (C,) int64
    scores: np.ndarray  # (C,) float64
    sources: tuple[frozenset[str], ...]
    scorer: str  # "ensemble" | "content" | "retrieval_order"
    gate_fired: bool
    disagreement: float | None
    error: str | None = None

    def __len__(self) -> int:
        return len(self.items)


class Ranker:
    """Score, gate, sort (see module docstring)."""

    def __init__(
        self,
        score: ScoreFn,
        fallback: FallbackFn,
        config: RankingConfig | None = None,
    ) -> None:
        self.score = score
        self.fallback = fallback
        self.config = config or RankingConfig()

    def rank(self, history: History, candidates: Candidates) -> RankedCandidates:
        items = candidates.items
        scorer, gate, disagreement, error = "ensemble", False, None, None
        scores: np.ndarray | None = None
        if len(items):
            try:
                raw, dis = self.score(history, items)
                scores = _checked(raw, len(items))
                disagreement = float(dis)
            except Exception as exc:  # a model failure never fails the request
                logger.warning("ensemble scoring failed, using the fallback: %r", exc)
                error = f"{type(exc).__name__}: {exc}"
                scores = None
        threshold = self.config.gate_threshold
        if scores is not None and disagreement is not None and threshold is not None:
            gate = not np.isfinite(disagreement) or disagreement > threshold
        if len(items) and (scores is None or gate):
            scorer = "content"
            try:
                scores = _checked(self.fallback(history, items), len(items))
            except Exception as exc:
                logger.warning(
                    "content fallback failed, keeping retrieval order: %r", exc
                )
                error = f"{error + '; ' if error else ''}{type(exc).__name__}: {exc}"
                scores = None
        if scores is None:
            scorer = "retrieval_order" if len(items) else scorer
            scores = -np.arange(len(items), dtype=np.float64)
        order = np.argsort(-scores, kind="stable")
        return RankedCandidates(
            items=items[order], scores=scores[order],
            sources=tuple(candidates.sources[i] for i in order),
            scorer=scorer, gate_fired=gate, disagreement=disagreement, error=error,
        )  # fmt: skip


def _checked(scores: np.ndarray, n: int) -> np.ndarray:
    out = np.asarray(scores, dtype=np.float64).ravel()
    if out.shape != (n,):
        raise ValueError(f"scorer returned {out.shape}, expected ({n},)")
    return np.where(np.isfinite(out), out, -np.inf)


class ContentFallbackScorer:
    """TF-IDF cosine of each candidate to the recent history, popularity as tiebreak.

    ``score = cosine(candidate, profile of the recent items) + tie * pop``
    with ``pop`` the candidate's popularity scaled to [0, 1]; with no history
    the score is popularity alone (a cold-start user).
    """

    def __init__(
        self,
        content: ContentModel,
        popularity: np.ndarray,
        *,
        recent_items: int = 5,
        decay: float = 0.5,
        tie: float = 1e-3,
    ) -> None:
        self.content = content
        pop = np.asarray(popularity, dtype=np.float64)
        self.popularity = pop / pop.max() if pop.size and pop.max() > 0 else pop
        self.recent_items = recent_items
        self.decay = decay
        self.tie = tie

    def __call__(self, history: History, candidates: np.ndarray) -> np.ndarray:
        pop: np.ndarray = self.popularity[candidates]
        if len(history) == 0:
            return pop
        recent = recent_items(history, self.recent_items)
        weights = self.decay ** np.arange(len(recent), dtype=np.float32)
        scores: np.ndarray = (
            self.content.scores(recent, candidates, weights) + self.tie * pop
        )
        return scores
