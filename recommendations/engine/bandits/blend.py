"""Evaluate and choose ensemble blend weights from logged slates.

Each logged slate keeps its candidates' per-member scores (``(M, D)``, the
ensemble's members; z-normalised per request here, as the ensemble blends
them), which items it showed at which position, their logging propensities
and the clicks. A candidate weight vector ``w`` on the simplex defines a
deterministic target policy on the same candidates: the top ``K`` of
``Z @ w``. Its value is estimated with the slate estimators of
:mod:`recommendations.engine.bandits.ope`; the reward model of DR is a
logistic regression of the click on the member scores and the position
(fitted on the same log; a cross-fitted model would remove its small
own-data bias, Chernozhukov et al. 2018 — not done here). The weights are
chosen by a Dirichlet search (``samples`` vectors plus the simplex corners
and the logging weights) maximising the DR estimate, as the existing
validation-based search does (``ensemble/selection.py``).

Departure from serving: the target is the blend order alone; the
reranker's boosts and MMR are not replayed (they are applied to every
weights version alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from recommendations.engine.bandits.ope import LoggedSlates, all_estimates
from recommendations.engine.debias.estimators import Estimate
from recommendations.engine.errors import ConfigError


@dataclass(frozen=True)
class SlateBatch:
    """``S`` logged slates of up to ``M`` candidates and ``K`` positions."""

    scores: np.ndarray  # (S, M, D) member scores of the candidates
    candidate_mask: np.ndarray  # (S, M) bool
    shown: np.ndarray  # (S, K) candidate index shown at k (-1: none)
    propensities: np.ndarray  # (S, K)
    rewards: np.ndarray  # (S, K)
    members: tuple[str, ...]

    @property
    def n(self) -> int:
        return int(self.scores.shape[0])

    @property
    def k(self) -> int:
        return int(self.shown.shape[1])

    @property
    def mask(self) -> np.ndarray:
        m: np.ndarray = self.shown >= 0
        return m

    def logged(self) -> LoggedSlates:
        return LoggedSlates(
            self.rewards, np.where(self.mask, self.propensities, 1.0), self.mask
        )

    @classmethod
    def from_records(
        cls, records: list[dict[str, Any]], members: tuple[str, ...]
    ) -> SlateBatch:
        """From plain records: ``{"candidates": {member: [score per
        candidate]}, "shown": [candidate index per position], "propensities":
        [...], "rewards": [...]}`` (what the impression log stores)."""
        if not records:
            raise ConfigError("no slates")
        m = max(len(next(iter(r["candidates"].values()))) for r in records)
        k = max(len(r["shown"]) for r in records)
        s, d = len(records), len(members)
        scores = np.zeros((s, m, d))
        cmask = np.zeros((s, m), bool)
        shown = np.full((s, k), -1, dtype=np.int64)
        prop = np.ones((s, k))
        rew = np.zeros((s, k))
        for i, r in enumerate(records):
            for j, name in enumerate(members):
                col = np.asarray(r["candidates"].get(name, []), dtype=np.float64)
                scores[i, : len(col), j] = col
            n_c = len(next(iter(r["candidates"].values())))
            cmask[i, :n_c] = True
            n_k = len(r["shown"])
            shown[i, :n_k] = r["shown"]
            prop[i, :n_k] = r["propensities"]
            rew[i, :n_k] = r["rewards"]
        return cls(scores, cmask, shown, prop, rew, members)


def normalised(batch: SlateBatch) -> np.ndarray:
    """Per-slate, per-member z-scores over the candidates ``(S, M, D)``."""
    mask = batch.candidate_mask[..., None]
    count = np.maximum(mask.sum(axis=1, keepdims=True), 1)
    mean = np.where(mask, batch.scores, 0.0).sum(axis=1, keepdims=True) / count
    var = (np.where(mask, batch.scores - mean, 0.0) ** 2).sum(axis=1, keepdims=True)
    sd = np.sqrt(var / count)
    z: np.ndarray = np.where(sd > 0, (batch.scores - mean) / np.where(sd > 0, sd, 1), 0)
    return np.where(mask, z, 0.0)


def target_slates(
    z: np.ndarray, mask: np.ndarray, weights: np.ndarray, k: int
) -> np.ndarray:
    """``(S, K)`` candidate indices of the deterministic blend target."""
    blend = np.where(mask, z @ np.asarray(weights, dtype=np.float64), -np.inf)
    top: np.ndarray = np.argsort(-blend, axis=1, kind="stable")[:, :k]
    return top


class RewardModel:
    """``P(click | member scores, position)`` by logistic regression."""

    def __init__(self, batch: SlateBatch, z: np.ndarray) -> None:
        self.k = batch.k
        rows = np.nonzero(batch.mask)
        feats = self._features(z[rows[0], batch.shown[rows]], rows[1])
        y = batch.rewards[rows] > 0
        self.constant: float | None = None
        if y.all() or not y.any():
            self.constant = float(y.mean()) if len(y) else 0.0
            self.model = None
        else:
            self.model = LogisticRegression(C=1.0, max_iter=500).fit(feats, y)

    def _features(self, zi: np.ndarray, pos: np.ndarray) -> np.ndarray:
        onehot = np.zeros((len(pos), self.k))
        onehot[np.arange(len(pos)), pos] = 1.0
        return np.hstack([zi, onehot])

    def predict(self, zi: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """``zi`` ``(N, D)`` member scores, ``pos`` ``(N,)`` positions."""
        if self.model is None:
            return np.full(len(pos), self.constant or 0.0)
        p: np.ndarray = self.model.predict_proba(self._features(zi, pos))[:, 1]
        return p


def evaluate_weights(
    batch: SlateBatch,
    weights: np.ndarray,
    *,
    z: np.ndarray | None = None,
    reward_model: RewardModel | None = None,
    tau: float = 100.0,
) -> dict[str, Estimate]:
    """IPS, SNIPS, DR and Switch-DR of the blend target ``weights``."""
    z = normalised(batch) if z is None else z
    model = reward_model or RewardModel(batch, z)
    k = batch.k
    target = target_slates(z, batch.candidate_mask, weights, k)  # (S, K)
    pi = (target == batch.shown).astype(np.float64) * batch.mask
    s_idx = np.arange(batch.n)[:, None].repeat(k, axis=1)
    pos = np.arange(k)[None, :].repeat(batch.n, axis=0)
    logged_items = np.where(batch.mask, batch.shown, 0)
    rhat = model.predict(
        z[s_idx, logged_items].reshape(-1, z.shape[2]), pos.ravel()
    ).reshape(batch.n, k)
    direct = model.predict(
        z[s_idx, target].reshape(-1, z.shape[2]), pos.ravel()
    ).reshape(batch.n, k)
    return all_estimates(batch.logged(), pi, rhat, direct * batch.mask, tau=tau)


@dataclass(frozen=True)
class BlendChoice:
    weights: dict[str, float]
    estimates: dict[str, dict[str, float]]
    searched: int
    slates: int


def _summary(e: Estimate) -> dict[str, float]:
    lo, hi = e.interval
    return {"value": e.value, "stderr": e.stderr, "lower": lo, "upper": hi}


def search_weights(
    batch: SlateBatch,
    *,
    samples: int = 200,
    seed: int = 0,
    include: list[np.ndarray] | None = None,
    objective: str = "dr",
) -> BlendChoice:
    """The weight vector with the highest ``objective`` estimate."""
    d = len(batch.members)
    rng = np.random.default_rng(seed)
    z = normalised(batch)
    model = RewardModel(batch, z)
    candidates = [np.eye(d)[i] for i in range(d)] + list(include or [])
    candidates += list(rng.dirichlet(np.ones(d), size=samples))
    best: tuple[float, np.ndarray, dict[str, Estimate]] | None = None
    for w in candidates:
        est = evaluate_weights(batch, w, z=z, reward_model=model)
        value = est[objective].value
        if best is None or value > best[0]:
            best = (value, w, est)
    assert best is not None
    _, w, est = best
    return BlendChoice(
        weights={
            name: round(float(x), 6) for name, x in zip(batch.members, w, strict=True)
        },
        estimates={name: _summary(e) for name, e in est.items()},
        searched=len(candidates),
        slates=batch.n,
    )
