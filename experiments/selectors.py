"""Reads of the experiments app: assignment, the click-to-slate join, results.

**Where serving calls it.** Before building a list for a signed-in user,
serving calls :func:`assignment_for` (no query while the in-process cache of
running experiments is fresh: ``APEX_EXPERIMENTS_CACHE_SECONDS``) and, when
it returns an :class:`Assignment`, serves with its weights version,
diversity and exploration, and passes :meth:`Assignment.policy` to
``experiments.services.slate_record``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import QuerySet

from experiments.models import Experiment, Impression, Variant
from learning import selectors as learning_selectors
from recommendations.engine.bandits.assignment import assign
from recommendations.engine.bandits.exploration import ExplorationConfig
from recommendations.engine.bandits.sequential import compare, mean_interval

# events that count as a reward for the slate they name
CLICK_KINDS = ("click", "watch", "rating")


@dataclass(frozen=True)
class Assignment:
    """The variant a user is in, and how to serve it."""

    experiment: str
    variant: str
    weights_version: int | None
    diversity: float | None
    exploration: ExplorationConfig | None

    def policy(self, *, weights_version: int | None = None) -> dict[str, Any]:
        """The ``policy`` argument of ``slate_record`` (``weights_version``:
        what was actually served, when the variant left it to the active one)."""
        kind = self.exploration.kind if self.exploration else "greedy"
        return {
            "weights_version": self.weights_version or weights_version,
            "experiment": self.experiment,
            "variant": self.variant,
            "policy": "greedy" if kind == "none" else kind,
        }


def _exploration(v: Variant) -> ExplorationConfig | None:
    if v.exploration == Variant.Exploration.NONE:
        return None
    return ExplorationConfig(
        kind=v.exploration, epsilon=v.epsilon, thompson_scale=v.thompson_scale
    )


@dataclass(frozen=True)
class _Running:
    key: str
    coverage: float
    hash_version: int
    variants: tuple[Variant, ...]


_cache_lock = threading.Lock()
_cache: dict[str, Any] = {"at": -1e9, "running": ()}


def running_experiments() -> tuple[_Running, ...]:
    """Running experiments with their variants, cached per process."""
    ttl = settings.APEX_EXPERIMENTS_CACHE_SECONDS
    now = time.monotonic()
    if now - _cache["at"] < ttl:
        return _cache["running"]  # type: ignore[no-any-return]
    rows = (
        Experiment.objects.filter(status=Experiment.Status.RUNNING)
        .prefetch_related("variants")
        .order_by("started_at", "id")
    )
    running = tuple(
        _Running(e.key, e.coverage, e.hash_version, tuple(e.variants.all()))
        for e in rows
    )
    with _cache_lock:
        _cache["at"], _cache["running"] = now, running
    return running


def running_experiments_forget() -> None:
    with _cache_lock:
        _cache["at"] = -1e9


def variant_index(*, experiment_key: str, user_id: int, shares: list[float],
                  coverage: float = 1.0, hash_version: int = 2) -> int:  # fmt: skip
    """GrowthBook's assignment of ``user_id`` (its decimal string) (-1: not in it)."""
    return assign(experiment_key, str(user_id), shares, coverage=coverage,
                  version=hash_version)  # fmt: skip


def assignment_for(*, user_id: int | None) -> Assignment | None:
    """The variant ``user_id`` is in: the first running experiment (oldest
    first) whose coverage includes the user; ``None``: serve the default."""
    if user_id is None:
        return None
    for exp in running_experiments():
        if not exp.variants:
            continue
        shares = [v.share for v in exp.variants]
        i = variant_index(
            experiment_key=exp.key, user_id=user_id, shares=shares,
            coverage=exp.coverage, hash_version=exp.hash_version,
        )  # fmt: skip
        if i < 0:
            continue
        v = exp.variants[i]
        return Assignment(
            exp.key, v.key, v.weights_version, v.diversity, _exploration(v)
        )
    return None


# ------------------------------------------------------------------ the join
@dataclass(frozen=True)
class Slate:
    """A logged slate with its rewards (the events that named its request id)."""

    request_id: str
    user_id: int | None
    variant: str
    policy: str
    weights_version: int | None
    movie_ids: list[int]
    propensities: list[float]
    clicks: list[int]  # per position: 1 when an event (click/watch/rating) named it
    ratings: list[float | None]  # per position: the rating given, if any
    candidates: dict[str, Any] | None
    served_at: datetime

    @property
    def clicked(self) -> bool:
        return any(self.clicks)

    @property
    def first_click_rank(self) -> int | None:
        """1-based position of the first clicked item."""
        for k, c in enumerate(self.clicks):
            if c:
                return k + 1
        return None


def impressions(
    *,
    experiment: str | None = None,
    variant: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    surfaces: Iterable[str] | None = None,
) -> QuerySet[Impression]:
    """Logged slates, oldest first (``until`` excluded; ``surfaces``: only
    those)."""
    qs = Impression.objects.all()
    if until is not None:
        qs = qs.filter(served_at__lt=until)
    if surfaces is not None:
        qs = qs.filter(surface__in=list(surfaces))
    if experiment is not None:
        qs = qs.filter(experiment=experiment)
    if variant is not None:
        qs = qs.filter(variant=variant)
    if since is not None:
        qs = qs.filter(served_at__gte=since)
    return qs.order_by("served_at", "id")


def slates_with_rewards(
    rows: Iterable[Impression], *, chunk: int = 2000
) -> list[Slate]:
    """Join each impression to the events that carry its request id.

    An event rewards the position of the slate that showed its movie (an
    event whose movie the slate did not show is ignored), and only when the
    user served the slate sent it: a request id is no credential, and
    another user's event naming it must not reward (or poison) the slate.
    """
    rows = list(rows)
    out: list[Slate] = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        events = learning_selectors.events_for_requests(
            request_ids=[r.request_id for r in part]
        )
        by_request: dict[str, list[dict[str, Any]]] = {}
        for e in events:
            by_request.setdefault(e["request_id"], []).append(e)
        for r in part:
            items = sorted(r.items, key=lambda i: i["position"])
            position = {int(i["movie_id"]): k for k, i in enumerate(items)}
            clicks = [0] * len(items)
            ratings: list[float | None] = [None] * len(items)
            for e in by_request.get(r.request_id, ()):
                k = position.get(e["movie_id"])
                if k is None or e["user_id"] != r.user_id:
                    continue  # not shown, or another user's event (issue 18)
                if e["kind"] in CLICK_KINDS:
                    clicks[k] = 1
                if e["kind"] == "rating":
                    ratings[k] = e["value"]
            out.append(
                Slate(
                    request_id=r.request_id,
                    user_id=r.user_id,
                    variant=r.variant,
                    policy=r.policy,
                    weights_version=r.weights_version,
                    movie_ids=[int(i["movie_id"]) for i in items],
                    propensities=[float(i["propensity"]) for i in items],
                    clicks=clicks,
                    ratings=ratings,
                    candidates=r.candidates,
                    served_at=r.served_at,
                )  # fmt: skip
            )
    return out


# ------------------------------------------------------------------ results
def _metric(values: list[float], *, tau: float, alpha: float) -> dict[str, Any]:
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    mean = float(x.mean()) if n else 0.0
    var = float(x.var(ddof=1)) if n > 1 else 0.0
    lo, hi = mean_interval(mean, var, n, tau=tau, alpha=alpha)
    return {"n": n, "mean": mean, "variance": var, "lower": lo, "upper": hi}


def experiment_results(*, experiment: Experiment) -> dict[str, Any]:
    """Per variant: slates, click-through (a slate with a reward), clicks
    per slate, rating rate, the rank of the first chosen item — each with an
    always-valid interval; and each variant against the control (the first)
    by the mSPRT stopping rule on click-through."""
    variants = list(experiment.variants.all())
    slates = slates_with_rewards(impressions(experiment=experiment.key))
    by_variant: dict[str, list[Slate]] = {v.key: [] for v in variants}
    for s in slates:
        by_variant.setdefault(s.variant, []).append(s)
    tau, alpha = experiment.tau, experiment.alpha
    rows = []
    for v in variants:
        mine = by_variant.get(v.key, [])
        ranks = [float(r) for s in mine if (r := s.first_click_rank) is not None]
        rows.append(
            {
                "variant": v,
                "slates": len(mine),
                "ctr": _metric([float(s.clicked) for s in mine], tau=tau, alpha=alpha),
                "clicks": _metric(
                    [float(sum(s.clicks)) for s in mine], tau=tau, alpha=alpha
                ),
                "rating_rate": _metric(
                    [float(any(r is not None for r in s.ratings)) for s in mine],
                    tau=tau,
                    alpha=alpha,
                ),  # fmt: skip
                "rank": _metric(ranks, tau=1.0, alpha=alpha),
            }
        )
    comparisons = []
    if rows:
        control = rows[0]["ctr"]
        for row in rows[1:]:
            m = row["ctr"]
            result = compare(
                control["n"], control["mean"], control["variance"],
                m["n"], m["mean"], m["variance"], tau=tau, alpha=alpha,
            )  # fmt: skip
            comparisons.append(
                {
                    "variant": row["variant"],
                    "control": rows[0]["variant"],
                    "result": result,
                }
            )
    return {"experiment": experiment, "variants": rows, "comparisons": comparisons,
            "slates": len(slates)}  # fmt: skip


def experiments_all() -> QuerySet[Experiment]:
    return Experiment.objects.prefetch_related("variants").order_by("-created_at")


def experiment_by_key(*, key: str) -> Experiment | None:
    return experiments_all().filter(key=key).first()


# ------------------------------------------------------------------ OPE input
def ope_records(
    *, since: datetime | None = None, limit: int = 200_000
) -> list[dict[str, Any]]:
    """Logged slates that carry their candidates' member scores, as the
    records ``recommendations.engine.bandits.blend.SlateBatch.from_records``
    reads: candidates' member scores, shown candidate indices, propensities,
    rewards (clicks)."""
    qs = impressions(since=since).exclude(candidates=None)[:limit]
    out = []
    for s in slates_with_rewards(qs):
        cand = s.candidates or {}
        ids = [int(i) for i in cand.get("movie_ids", [])]
        members = cand.get("members") or {}
        index = {m: k for k, m in enumerate(ids)}
        shown = [index.get(m, -1) for m in s.movie_ids]
        if not ids or not members or -1 in shown:
            continue
        out.append(
            {
                "candidates": members,
                "shown": shown,
                "propensities": s.propensities,
                "rewards": s.clicks,
            }
        )
    return out
