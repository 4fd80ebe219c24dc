"""What the recommendation selectors return: served lists and how they were
produced (the API's ``meta``). Plain frozen dataclasses over catalog rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FeedMeta:
    """How a list was produced (the API's ``meta``)."""

    tier: int | None
    tier_name: str | None
    fallback: bool
    fallback_reason: str | None
    gate_fired: bool
    scorer: str
    artifact_version: str | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    # the serving policy: ``greedy`` | ``epsilon_greedy`` | ``thompson``, and
    # the weights version of an experiment variant (``None``: the active one)
    policy: str = "greedy"
    weights_version: int | None = None


@dataclass(frozen=True)
class FeedItem:
    movie: Any  # a catalog Movie card (``catalog.selectors.movie_cards``)
    score: float | None
    reason: str | None


@dataclass(frozen=True)
class FeedResult:
    items: list[FeedItem]
    meta: FeedMeta
    # per item, the probability the serving policy showed it there (1 for a
    # deterministic list; ``None``: all 1)
    propensities: list[float] | None = None
    # the id of the logged slate (``experiments.services.slate_record``);
    # events that carry it are joined to this list
    request_id: str | None = None
    # sampled lists only: the candidates and each member's score of them
    # (``ServedList.candidates``), logged for off-policy evaluation
    candidates: dict[str, Any] | None = None

    @property
    def movie_ids(self) -> list[int]:
        return [item.movie.pk for item in self.items]


@dataclass(frozen=True)
class FeedRow:
    """One row of the home page or the movie page."""

    key: str
    title: str
    result: FeedResult
    prompt: str | None = None


@dataclass(frozen=True)
class KnowledgeGraphResult:
    movie: Any
    relations: dict[str, list[Any]]
    shared: dict[str, list[str]]  # per relation, what is shared (names)
    meta: FeedMeta


@dataclass(frozen=True)
class Served:
    """An id list before hydration (engine output or database fallback)."""

    ids: list[int]
    scores: list[float | None]
    reasons: list[str | None]
    meta: FeedMeta
    propensities: list[float] | None = None  # ``None``: a deterministic list
    candidates: dict[str, Any] | None = None  # see ``FeedResult.candidates``

    def keep(self, positions: list[int]) -> Served:
        """The entries at ``positions``, in that order."""
        return Served(
            [self.ids[i] for i in positions],
            [self.scores[i] for i in positions],
            [self.reasons[i] for i in positions],
            self.meta,
            None
            if self.propensities is None
            else [self.propensities[i] for i in positions],
            self.candidates,
        )
