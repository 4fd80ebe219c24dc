"""Synthetic interactions with planted structure whose right answers are known.

The generator plants five things, each exposed in :class:`SyntheticTruth` so
tests can check that a model recovers it:

- **taste clusters**: every item belongs to one cluster; every user starts in
  a home cluster and mostly consumes its items;
- **power-law popularity**: inside a cluster, item ``r`` (by rank) is drawn
  with weight ``(r + 1) ** -popularity_exponent``;
- **sequential chains**: items are linked into chains inside each cluster;
  after consuming item ``A`` the user's next item is ``successor[A]`` with
  probability ``chain_probability`` (when not yet seen);
- **slow taste drift**: each user drifts from the home cluster to a second
  cluster; the chance of drawing from the second one grows linearly from 0 to
  ``drift`` over the user's history;
- **demographic groups**: users carry an age band and gender; the home
  cluster depends on the group (``group = home_cluster % n_groups``).

Everything is driven by one ``numpy.random.Generator`` seeded from ``seed``,
so equal arguments give identical data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recommendations.engine.data.interactions import Interactions
from recommendations.engine.data.ordering import TieOrder


class SyntheticConfig(BaseModel):
    """Size and strength of the planted structure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: int = Field(300, ge=2)
    """Number of users."""
    items: int = Field(200, ge=4)
    """Number of items."""
    interactions: int = Field(9000, ge=2)
    """Approximate total events; each user gets about ``interactions / users``."""
    clusters: int = Field(5, ge=1)
    """Number of taste clusters (items split evenly)."""
    groups: int = Field(2, ge=1)
    """Number of demographic groups."""
    popularity_exponent: float = Field(1.0, ge=0.0)
    """Zipf exponent of item popularity inside a cluster (0 = uniform)."""
    chain_probability: float = Field(0.6, ge=0.0, le=1.0)
    """Probability that the next event follows the planted chain."""
    chain_length: int = Field(4, ge=2)
    """Items per chain."""
    in_cluster: float = Field(0.9, ge=0.0, le=1.0)
    """Probability that a non-chain event is drawn from the user's clusters."""
    drift: float = Field(0.4, ge=0.0, le=1.0)
    """Final probability of drawing from the drift cluster instead of home."""
    seed: int = 0
    """Seed of the random generator."""

    @model_validator(mode="after")
    def _check(self) -> SyntheticConfig:
        if self.items < self.clusters * 2:
            raise ValueError("need at least 2 items per cluster")
        if self.interactions // self.users > self.items:
            raise ValueError("more events per user than items")
        return self


@dataclass(frozen=True)
class SyntheticTruth:
    """The planted structure, indexed by the external ids (= 0-based ints)."""

    item_cluster: np.ndarray  # (n_items,)
    user_cluster: np.ndarray  # (n_users,) home cluster
    user_drift_cluster: np.ndarray  # (n_users,)
    user_group: np.ndarray  # (n_users,)
    successor: np.ndarray  # (n_items,) planted next item, -1 at the chain end
    item_weight: np.ndarray  # (n_items,) popularity weight inside its cluster


@dataclass(frozen=True)
class SyntheticData:
    ratings: pd.DataFrame  # user_id, item_id, rating, timestamp
    users: pd.DataFrame  # user_id, age, gender, group
    movies: pd.DataFrame  # item_id, title, year, genres
    truth: SyntheticTruth
    config: SyntheticConfig

    def interactions(self, *, ties: TieOrder | str | None = None) -> Interactions:
        features = self.movies.set_index("item_id")[["title", "year", "genres"]]
        return Interactions.from_frame(
            self.ratings, item_features=features, name="synthetic", ties=ties
        )


def generate(
    config: SyntheticConfig | None = None, **overrides: object
) -> SyntheticData:
    """Generate a data set; keyword overrides build the config, e.g. ``seed=3``."""
    cfg = config or SyntheticConfig(**overrides)
    rng = np.random.default_rng(cfg.seed)
    n_u, n_i, n_c = cfg.users, cfg.items, cfg.clusters

    item_cluster = rng.permutation(np.arange(n_i) % n_c)
    members = [np.flatnonzero(item_cluster == c) for c in range(n_c)]
    item_weight = np.zeros(n_i)
    for m in members:
        rank = rng.permutation(len(m))
        item_weight[m] = (rank + 1.0) ** -cfg.popularity_exponent
    cluster_probs = [item_weight[m] / item_weight[m].sum() for m in members]

    successor = np.full(n_i, -1, dtype=np.int64)
    for m in members:
        order = rng.permutation(m)
        for start in range(0, len(order), cfg.chain_length):
            chain = order[start : start + cfg.chain_length]
            successor[chain[:-1]] = chain[1:]

    user_cluster = rng.integers(0, n_c, n_u)
    drift_cluster = (user_cluster + 1 + rng.integers(0, max(n_c - 1, 1), n_u)) % n_c
    user_group = user_cluster % cfg.groups
    per_user = max(2, cfg.interactions // n_u)
    lengths = np.clip(rng.poisson(per_user, n_u), 2, min(n_i, 3 * per_user))

    rows: list[tuple[int, int, float, int]] = []
    for u in range(n_u):
        seen: set[int] = set()
        t = 1_000_000_000 + int(rng.integers(0, 30 * 86_400))  # start in 30 days
        prev = -1
        n = int(lengths[u])
        for step in range(n):
            item = -1
            nxt = successor[prev] if prev >= 0 else -1
            if nxt >= 0 and nxt not in seen and rng.random() < cfg.chain_probability:
                item = int(nxt)
            else:
                for _ in range(20):  # draw until unseen
                    if rng.random() < cfg.in_cluster:
                        p_drift = cfg.drift * step / max(n - 1, 1)
                        c = (
                            drift_cluster[u]
                            if rng.random() < p_drift
                            else user_cluster[u]
                        )
                        cand = int(rng.choice(members[c], p=cluster_probs[c]))
                    else:
                        cand = int(rng.integers(0, n_i))
                    if cand not in seen:
                        item = cand
                        break
                if item < 0:
                    unseen = np.setdiff1d(np.arange(n_i), list(seen))
                    item = int(rng.choice(unseen))
            seen.add(item)
            t += int(rng.exponential(30 * 86_400 / n)) + 1  # ~30 days per user
            rating = float(np.clip(np.round(rng.normal(4.0, 0.8)), 1, 5))
            rows.append((u, item, rating, t))
            prev = item

    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    ages = np.array([18, 25, 35, 45, 56])
    users = pd.DataFrame(
        {
            "user_id": np.arange(n_u),
            "age": ages[(user_group * 2 + rng.integers(0, 2, n_u)) % len(ages)],
            "gender": np.where(user_group % 2 == 0, "F", "M"),
            "group": user_group,
        }
    )
    movies = pd.DataFrame(
        {
            "item_id": np.arange(n_i),
            "title": [f"Item {i}" for i in range(n_i)],
            "year": 1980 + item_cluster * 5 + rng.integers(0, 5, n_i),
            "genres": [[f"genre-{c}"] for c in item_cluster],
        }
    )
    truth = SyntheticTruth(
        item_cluster, user_cluster, drift_cluster, user_group, successor, item_weight
    )
    return SyntheticData(ratings, users, movies, truth, cfg)
