"""Stage 1, retrieval: a few hundred candidates from several cheap sources.

Sources (each a :class:`CandidateSource`: a name and a callable returning
item indices best first):

- ``ann``: FAISS inner-product search on the user's vector;
- ``sequence``: next-item candidates from a sequence model (any callable
  ``history -> items``);
- ``content``: TF-IDF neighbours of the user's recent items;
- ``graph``: knowledge-graph neighbours of the recent items (same
  collection/franchise, same director, shared lead cast, shared genres);
- ``popular``: the most popular items, used only as a *fallback* when the
  other sources together return fewer than ``min_candidates``.

The union is merged round-robin by rank (every source's first item, then
every source's second, ...) so the cap keeps the best items of each source
rather than all of the first source. Seen items are removed; every candidate
carries the set of sources that produced it. A source that raises is skipped,
logged once and reported in :attr:`Candidates.failed`; the request goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recommendations.engine.data.interactions import History
from recommendations.engine.pipeline.ann import AnnIndex
from recommendations.engine.pipeline.content import ContentModel
from recommendations.engine.pipeline.items import ItemMetadata

logger = logging.getLogger(__name__)

POPULAR = "popular"


class RetrievalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_candidates: int = Field(300, ge=1)
    """Cap on the union handed to ranking."""
    per_source: int = Field(300, ge=1)
    """Items asked of each source."""
    min_candidates: int = Field(100, ge=0)
    """Popular items fill the union up to this size when the others fall short."""
    recent_items: int = Field(5, ge=1)
    """How many of the latest history items seed the content and graph sources."""


@dataclass(frozen=True)
class RetrievalRequest:
    """What the sources see: the user's history and optional precomputed vector."""

    history: History
    user_vector: np.ndarray | None = None
    exclude: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Items never to return (the seen items, plus anything the caller adds)."""
    recent_items: int = 5

    @property
    def recent(self) -> np.ndarray:
        """The latest distinct history items, most recent first."""
        return recent_items(self.history, self.recent_items)


def recent_items(history: History, n: int) -> np.ndarray:
    """The latest ``n`` distinct items of ``history``, most recent first."""
    items = history.items[::-1]
    _, first = np.unique(items, return_index=True)
    return items[np.sort(first)][:n]


SourceFn = Callable[[RetrievalRequest, int], np.ndarray]


@dataclass(frozen=True)
class CandidateSource:
    """A named retrieval source: ``fn(request, k) -> item indices, best first``."""

    name: str
    fn: SourceFn


@dataclass(frozen=True)
class Candidates:
    """Retrieval output: unique unseen items and where each came from."""

    items: np.ndarray  # (C,) int64, merge order
    sources: tuple[frozenset[str], ...]  # per item
    failed: Mapping[str, str]  # source name -> "ErrorType: message"
    fallback_used: bool  # popular items were added

    def __len__(self) -> int:
        return len(self.items)

    def source_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for tags in self.sources:
            for tag in tags:
                counts[tag] = counts.get(tag, 0) + 1
        return counts


class Retriever:
    """Union of the sources (see module docstring)."""

    def __init__(
        self,
        sources: Sequence[CandidateSource],
        popular: np.ndarray | None = None,
        config: RetrievalConfig | None = None,
    ) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names) or POPULAR in names:
            raise ValueError(
                f"source names must be unique and not {POPULAR!r}: {names}"
            )
        self.sources = list(sources)
        self.popular = None if popular is None else np.asarray(popular, dtype=np.int64)
        self.config = config or RetrievalConfig()

    def retrieve(
        self,
        history: History,
        *,
        user_vector: np.ndarray | None = None,
        exclude_seen: bool = True,
        exclude: np.ndarray | None = None,
    ) -> Candidates:
        cfg = self.config
        parts = [np.asarray(exclude if exclude is not None else [], dtype=np.int64)]
        if exclude_seen:
            parts.append(history.items)
        excluded = np.unique(np.concatenate(parts))
        request = RetrievalRequest(history, user_vector, excluded, cfg.recent_items)

        ranked: list[tuple[str, np.ndarray]] = []
        failed: dict[str, str] = {}
        for source in self.sources:
            try:
                items = np.asarray(source.fn(request, cfg.per_source), dtype=np.int64)
            except Exception as exc:  # a broken source never fails the request
                logger.warning("retrieval source %s failed: %r", source.name, exc)
                failed[source.name] = f"{type(exc).__name__}: {exc}"
                continue
            ranked.append((source.name, items.ravel()[: cfg.per_source]))

        items, tags = _merge(ranked, excluded, cfg.max_candidates)
        fallback = False
        if (
            len(items) < min(cfg.min_candidates, cfg.max_candidates)
            and self.popular is not None
        ):
            room = min(cfg.min_candidates, cfg.max_candidates)
            pop = self.popular[
                ~np.isin(self.popular, np.concatenate([excluded, items]))
            ]
            extra = pop[: room - len(items)]
            fallback = len(extra) > 0
            items = np.concatenate([items, extra])
            tags += [frozenset({POPULAR})] * len(extra)
        return Candidates(items.astype(np.int64), tuple(tags), failed, fallback)


def _merge(
    ranked: list[tuple[str, np.ndarray]], excluded: np.ndarray, cap: int
) -> tuple[np.ndarray, list[frozenset[str]]]:
    """Round-robin union by rank; tags collect every source that returned the item."""
    if not ranked:
        return np.zeros(0, dtype=np.int64), []
    items = np.concatenate([r for _, r in ranked])
    rank = np.concatenate([np.arange(len(r)) for _, r in ranked])
    src = np.concatenate([np.full(len(r), j) for j, (_, r) in enumerate(ranked)])
    keep = ~np.isin(items, excluded) & (items >= 0)
    items, rank, src = items[keep], rank[keep], src[keep]
    order = np.lexsort((src, rank))
    items, src = items[order], src[order]
    _, first, inverse = np.unique(items, return_index=True, return_inverse=True)
    # one bit per source, OR-ed over every occurrence of the item
    masks = np.zeros(len(first), dtype=np.int64)
    np.bitwise_or.at(masks, inverse, np.left_shift(1, src))
    keep_unique = np.argsort(first, kind="stable")[:cap]  # merge order
    out = items[first[keep_unique]]
    names = [name for name, _ in ranked]
    cache: dict[int, frozenset[str]] = {}
    tags = []
    for mask in masks[keep_unique].tolist():
        if mask not in cache:
            cache[mask] = frozenset(n for j, n in enumerate(names) if mask >> j & 1)
        tags.append(cache[mask])
    return out, tags


# ------------------------------------------------------------------ sources
def ann_source(
    index: AnnIndex, user_vector: Callable[[History], np.ndarray] | None = None
) -> CandidateSource:
    """FAISS search on ``request.user_vector`` (or ``user_vector(history)``)."""

    def fn(request: RetrievalRequest, k: int) -> np.ndarray:
        vec = request.user_vector
        if vec is None:
            if user_vector is None or len(request.history) == 0:
                return np.zeros(0, dtype=np.int64)
            vec = user_vector(request.history)
        ids, _ = index.search(np.asarray(vec), k, request.exclude)
        return ids

    return CandidateSource("ann", fn)


def sequence_source(
    next_items: Callable[[History, int], np.ndarray],
) -> CandidateSource:
    """A sequence model's next-item candidates: ``next_items(history, k)``."""

    def fn(request: RetrievalRequest, k: int) -> np.ndarray:
        if len(request.history) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(next_items(request.history, k + len(request.exclude)))

    return CandidateSource("sequence", fn)


def content_source(model: ContentModel, decay: float = 0.5) -> CandidateSource:
    """TF-IDF neighbours of the recent items (the latest weighted ``1, decay, ...``)."""

    def fn(request: RetrievalRequest, k: int) -> np.ndarray:
        recent = request.recent
        weights = decay ** np.arange(len(recent), dtype=np.float32)
        ids, _ = model.neighbours(recent, k, exclude=request.exclude, weights=weights)
        return ids

    return CandidateSource("content", fn)


@dataclass(frozen=True)
class GraphWeights:
    """How much each shared fact counts when ranking graph neighbours."""

    collection: float = 4.0
    director: float = 2.0
    cast: float = 1.0  # per shared lead cast member
    genre: float = 0.5  # times the genre cosine


def graph_scores(
    meta: ItemMetadata, anchors: np.ndarray, weights: GraphWeights = GraphWeights()
) -> np.ndarray:
    """Per item, the summed relation strength to the ``anchors`` ``(n_items,)``."""
    everything = np.arange(meta.n_items)
    score = np.zeros(meta.n_items)
    if len(anchors) == 0:
        return score
    score += weights.collection * meta.same_collection(everything, anchors).sum(1)
    if meta.directors.shape[1]:
        score += weights.director * (
            meta.shared(meta.directors, everything, anchors) > 0
        ).sum(1)
    if meta.cast.shape[1]:
        score += weights.cast * meta.shared(meta.cast, everything, anchors).sum(1)
    if meta.genres.shape[1]:
        score += weights.genre * meta.genre_similarity(everything, anchors).sum(1)
    return score


def graph_source(
    meta: ItemMetadata, weights: GraphWeights = GraphWeights()
) -> CandidateSource:
    """Knowledge-graph neighbours of the recent items (see :func:`graph_scores`)."""

    def fn(request: RetrievalRequest, k: int) -> np.ndarray:
        score = graph_scores(meta, request.recent, weights)
        score[request.exclude] = 0.0
        related = np.flatnonzero(score > 0)
        order = np.lexsort((related, -score[related]))
        top: np.ndarray = related[order][:k]
        return top

    return CandidateSource("graph", fn)


def popularity_order(counts: np.ndarray) -> np.ndarray:
    """Item indices by descending count (ties: lower index first)."""
    counts = np.asarray(counts)
    order: np.ndarray = np.lexsort((np.arange(len(counts)), -counts)).astype(np.int64)
    return order
