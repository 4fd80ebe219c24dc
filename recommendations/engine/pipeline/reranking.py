"""Stage 3, reranking: heuristic boosts, MMR diversity, a reason per item.

**Boosts** (DESIGN.md §5 and issue 6's table), added to the ranking score
after it is min-max normalised to [0, 1] over the candidates (all-equal
scores become 1; a non-finite score 0). Each boost counts at most once per
candidate:

| boost | value | applies when |
|---|---|---|
| franchise | +0.25 | same known collection as any anchor |
| director | +0.10 | shares a director with any anchor |
| era | +0.03 | released within 5 years of the candidate's anchor |
| quality | +0.02 | vote average >= 7.0 from >= 50 votes |
| no_genre | -0.15 | has genres, the history has genres, none shared |

*Anchors* are the user's latest distinct history items (``anchor_items``,
most recent first). Each candidate gets one anchor, the one it relates to
most strongly: same collection, then same director, then shared lead cast,
then item-item similarity, then recency. The era boost and the reason use
that anchor. "The history" for the genre penalty is the whole history.

**MMR** (Carbonell & Goldstein, SIGIR 1998) picks the list greedily:
``argmax_i  lam * rel(i) - (1 - lam) * max_{j in S} sim(i, j)`` with
``lam = 1 - diversity`` and ``rel`` the boosted score; ``diversity=0`` is the
boosted-score order. ``sim`` is an injected item-item similarity (genre
cosine by default, TF-IDF cosine when the pipeline has a content model).

**Reasons**: "From the Z collection, like X", "Same director as X",
"Shares cast with X", "Because you watched X" (X a real history item: the
anchor) or "Popular right now" when the item came only from the popularity
fallback or the user has no history.

**Exploration** (off by default): ``rerank(..., exploration=...)`` perturbs
the chosen list by epsilon-greedy or Thompson sampling and reports each shown
item's propensity (``recommendations.engine.bandits.exploration``); without
it every propensity is 1 (the greedy list is deterministic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recommendations.engine.bandits.exploration import ExplorationConfig, explore
from recommendations.engine.data.interactions import History
from recommendations.engine.pipeline.items import ItemMetadata
from recommendations.engine.pipeline.ranking import RankedCandidates
from recommendations.engine.pipeline.retrieval import POPULAR, recent_items

SimilarityFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(items (A,), others (B,)) -> (A, B)`` similarity in [0, 1]."""


class RerankConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    franchise_boost: float = 0.25
    director_boost: float = 0.10
    era_boost: float = 0.03
    era_years: float = Field(5.0, ge=0)
    quality_boost: float = 0.02
    quality_min_average: float = 7.0
    quality_min_votes: int = Field(50, ge=0)
    no_genre_penalty: float = -0.15
    anchor_items: int = Field(10, ge=1)
    """Latest distinct history items that can anchor a candidate."""
    diversity: float = Field(0.0, ge=0.0, le=1.0)
    """MMR trade-off: 0 = relevance order, 1 = similarity only (lam = 1 - diversity)."""


@dataclass(frozen=True)
class Boost:
    name: str
    value: float


@dataclass(frozen=True)
class RerankedItem:
    item: int
    score: float  # relevance + boosts (the MMR relevance)
    relevance: float  # normalised ranking score in [0, 1]
    boosts: tuple[Boost, ...]
    anchor: int | None  # the history item the reason names
    reason: str
    sources: frozenset[str]
    propensity: float = 1.0  # P(this item at this position) under the policy


@dataclass(frozen=True)
class Reranked:
    items: tuple[RerankedItem, ...]
    diversity: float
    policy: str = "greedy"  # "greedy" | "epsilon_greedy" | "thompson"

    def __len__(self) -> int:
        return len(self.items)


def minmax(scores: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; all-equal scores -> 1, non-finite -> 0."""
    s = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(s)
    out = np.zeros_like(s)
    if not finite.any():
        return out
    lo, hi = s[finite].min(), s[finite].max()
    out[finite] = 1.0 if hi == lo else (s[finite] - lo) / (hi - lo)
    return out


def mmr(
    relevance: np.ndarray, similarity: np.ndarray, n: int, lam: float
) -> np.ndarray:
    """Greedy MMR selection of ``n`` positions (see module docstring)."""
    c = len(relevance)
    n = min(n, c)
    if lam >= 1.0 or n <= 1:
        return np.argsort(-relevance, kind="stable")[:n]
    chosen = [int(np.argmax(relevance))]
    closest = similarity[chosen[0]].copy()  # max similarity to the chosen set
    taken = np.zeros(c, dtype=bool)
    taken[chosen[0]] = True
    for _ in range(n - 1):
        value = lam * relevance - (1.0 - lam) * closest
        value[taken] = -np.inf
        pick = int(np.argmax(value))
        chosen.append(pick)
        taken[pick] = True
        np.maximum(closest, similarity[pick], out=closest)
    return np.asarray(chosen, dtype=np.int64)


def intra_list_diversity(items: np.ndarray, similarity: SimilarityFn) -> float:
    """Mean pairwise ``1 - sim`` over the list (0 for fewer than two items)."""
    items = np.asarray(items, dtype=np.int64)
    if len(items) < 2:
        return 0.0
    sim = similarity(items, items)
    upper = np.triu_indices(len(items), k=1)
    return float(np.mean(1.0 - sim[upper]))


class Reranker:
    """Boosts + MMR + reasons over the ranked candidates."""

    def __init__(
        self,
        meta: ItemMetadata,
        similarity: SimilarityFn | None = None,
        config: RerankConfig | None = None,
    ) -> None:
        self.meta = meta
        self.similarity = similarity or meta.genre_similarity
        self.config = config or RerankConfig()
        self._quality = meta.quality(
            self.config.quality_min_average, self.config.quality_min_votes
        )

    def boosts(
        self, history: History, items: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
        """Per boost name the value per candidate, the anchor per candidate
        (-1 = none) and the boolean relations the reasons use."""
        cfg, meta = self.config, self.meta
        c = len(items)
        anchors = recent_items(history, cfg.anchor_items)
        names = ("franchise", "director", "era", "quality", "no_genre")
        out = {k: np.zeros(c) for k in names}
        out["quality"] = np.where(self._quality[items], cfg.quality_boost, 0.0)
        relations: dict[str, np.ndarray] = {
            k: np.zeros(c, dtype=bool) for k in ("collection", "director", "cast")
        }
        anchor = np.full(c, -1, dtype=np.int64)
        if c == 0 or len(anchors) == 0:
            return out, anchor, relations

        coll = meta.same_collection(items, anchors)  # (C, A)
        dirs = meta.shared(meta.directors, items, anchors) > 0
        cast = meta.shared(meta.cast, items, anchors) > 0
        sim = np.clip(self.similarity(items, anchors), 0.0, 1.0)
        recency = 1e-6 * (len(anchors) - np.arange(len(anchors)))[None, :]
        key = 8.0 * coll + 4.0 * dirs + 2.0 * cast + sim + recency
        pick = np.argmax(key, axis=1)
        anchor = anchors[pick]
        rows = np.arange(c)

        relations = {  # np.asarray: the stub's any(axis) may also be a scalar
            "collection": np.asarray(coll.any(1)),
            "director": np.asarray(dirs.any(1)),
            "cast": cast[rows, pick],
        }
        out["franchise"] = np.where(relations["collection"], cfg.franchise_boost, 0.0)
        out["director"] = np.where(relations["director"], cfg.director_boost, 0.0)
        gap = np.abs(meta.years[items] - meta.years[anchor])
        with np.errstate(invalid="ignore"):
            out["era"] = np.where(gap <= cfg.era_years, cfg.era_boost, 0.0)

        history_genres = (
            np.asarray(meta.genres[np.unique(history.items)].sum(0)).ravel() > 0
        )
        if history_genres.any():
            cand = meta.genres[items]
            has = np.diff(cand.indptr) > 0
            shared = np.asarray(cand @ history_genres.astype(np.float32)).ravel() > 0
            out["no_genre"] = np.where(has & ~shared, cfg.no_genre_penalty, 0.0)
        return out, anchor, relations

    def rerank(
        self,
        history: History,
        ranked: RankedCandidates,
        n: int,
        *,
        diversity: float | None = None,
        exploration: ExplorationConfig | None = None,
        rng: np.random.Generator | None = None,
    ) -> Reranked:
        diversity = self.config.diversity if diversity is None else float(diversity)
        if not 0.0 <= diversity <= 1.0:
            raise ValueError(f"diversity must be in [0, 1], got {diversity}")
        items = ranked.items
        relevance = minmax(ranked.scores)
        boosts, anchor, relations = self.boosts(history, items)
        score = relevance + sum(boosts.values())
        if diversity > 0 and len(items) > 1:
            sim = np.clip(self.similarity(items, items), 0.0, 1.0)
            picked = mmr(score, sim, n, 1.0 - diversity)
        else:
            picked = np.argsort(-score, kind="stable")[:n]
        propensities = np.ones(len(picked))
        policy = "greedy"
        if exploration is not None and exploration.enabled and len(picked):
            slate = explore(exploration, score, picked, rng or np.random.default_rng())
            picked, propensities, policy = (
                slate.picked,
                slate.propensities,
                slate.policy,
            )

        out = []
        for p, propensity in zip(picked.tolist(), propensities.tolist(), strict=True):
            applied = tuple(
                Boost(name, float(v[p])) for name, v in boosts.items() if v[p] != 0.0
            )
            a = int(anchor[p])
            sources = ranked.sources[p]
            reason = self._reason(p, a, relations, sources)
            out.append(
                RerankedItem(
                    item=int(items[p]),
                    score=float(score[p]),
                    relevance=float(relevance[p]),
                    boosts=applied,
                    anchor=a if a >= 0 else None,
                    reason=reason,
                    sources=sources,
                    propensity=propensity,
                )  # fmt: skip
            )
        return Reranked(tuple(out), diversity, policy)

    def _reason(
        self,
        p: int,
        anchor: int,
        relations: dict[str, np.ndarray],
        sources: frozenset[str],
    ) -> str:
        if anchor < 0 or sources == frozenset({POPULAR}):
            return "Popular right now"
        title = self.meta.titles[anchor]
        if relations["collection"][p]:
            name = self.meta.collection_name(anchor)
            if name:
                return f"From the {name} collection, like {title}"
            return f"From the same collection as {title}"
        if relations["director"][p]:
            return f"Same director as {title}"
        if relations["cast"][p]:
            return f"Shares cast with {title}"
        return f"Because you watched {title}"
