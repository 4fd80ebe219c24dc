"""Exploration in the reranker, with the propensity of every shown item.

The reranker's greedy list ``g_1 .. g_n`` (its top ``n`` of ``m`` candidates)
is what serving shows without exploration. Two policies perturb it and
report, for every shown item ``a`` at position ``k``, the marginal
probability ``mu_k(a | x)`` that the policy puts ``a`` at ``k`` in this
context (the *item-position propensity* the off-policy estimators in
:mod:`recommendations.engine.bandits.ope` divide by).

**Epsilon-greedy** (Sutton & Barto, *Reinforcement Learning*, 2nd ed.,
§2.2; per slot, as in slate bandits, e.g. Li, Chu, Langford & Schapire,
WWW 2010 for the single-slot case). Each of the ``n`` slots is an
*exploration slot* independently with probability ``epsilon``. Non-exploring
slots keep their greedy item; the exploring slots receive a uniformly random
injective draw from the *pool*: every candidate not kept by a non-exploring
slot (size ``m - n + E`` for ``E`` exploring slots). The marginals are exact,
in closed form. With ``h(t, b) = E[1 / (b + B)]``, ``B ~ Binomial(t, epsilon)``
(a finite sum over ``t + 1`` terms):

- the greedy item of slot ``k`` at ``k``: ``(1 - eps) + eps * h(n-1, m-n+1)``;
- the greedy item of another slot ``j`` at ``k``: ``eps^2 * h(n-2, m-n+2)``
  (both slots explore, and the draw gives it to ``k``);
- a candidate outside the greedy list at ``k``: ``eps * h(n-1, m-n+1)``.

Over the ``m`` candidates these sum to one at each position (the tests
check it, and the Monte-Carlo frequencies).

**Thompson sampling** (Thompson, Biometrika 1933; Chapelle & Li, NeurIPS
2011; for rankings, e.g. Kveton et al., "Cascading Bandits", ICML 2015).
Each candidate's score has a Gaussian posterior ``N(score_i, sigma_i^2)``;
the slate is the top ``n`` of one joint draw. The marginal ``mu_k(a)`` has no
closed form; it is estimated by Monte Carlo: the realised draw plus
``samples - 1`` fresh draws of the same posterior, ``mu_hat_k(a) = (# draws
with a at k) / samples``. Because the realised draw is counted,
``mu_hat >= 1 / samples`` (importance weights stay bounded by ``samples``),
at the price of an upward bias of ``(1 - mu) / samples`` per propensity:
state ``samples`` with every estimate made from such logs. Departure: the
posterior scale is a configured constant (or a per-candidate array given by
the caller), not one fitted from click counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recommendations.engine.errors import ConfigError

ExplorationKind = Literal["none", "epsilon_greedy", "thompson"]


class ExplorationConfig(BaseModel):
    """How the reranker explores (off by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ExplorationKind = "none"
    """``none`` (greedy), ``epsilon_greedy`` or ``thompson``."""
    epsilon: float = Field(0.1, ge=0.0, le=1.0)
    """Epsilon-greedy: probability that a slot explores."""
    thompson_scale: float = Field(0.1, gt=0.0)
    """Thompson: posterior standard deviation of every candidate's score
    (scores are the reranker's, relevance in [0, 1] plus boosts)."""
    thompson_samples: int = Field(256, ge=2, le=100_000)
    """Thompson: draws of the Monte-Carlo propensity estimate."""

    @property
    def enabled(self) -> bool:
        return self.kind != "none" and not (
            self.kind == "epsilon_greedy" and self.epsilon == 0.0
        )


@dataclass(frozen=True)
class ExploredSlate:
    """The shown slate: indices into the candidate array, best slot first,
    and the propensity of each shown item at its position."""

    picked: np.ndarray  # (n,) int64 candidate indices
    propensities: np.ndarray  # (n,) float64 in (0, 1]
    explored: np.ndarray  # (n,) bool: the slot explored (epsilon-greedy)
    policy: str


def _h(t: int, base: int, epsilon: float) -> float:
    """``E[1 / (base + B)]`` for ``B ~ Binomial(t, epsilon)``."""
    if t < 0:
        return 0.0
    return float(
        sum(
            math.comb(t, k) * epsilon**k * (1.0 - epsilon) ** (t - k) / (base + k)
            for k in range(t + 1)
        )
    )


@dataclass(frozen=True)
class EpsilonGreedyMarginals:
    """The three distinct item-position probabilities of epsilon-greedy."""

    own: float  # the greedy item of slot k, at k
    other_greedy: float  # the greedy item of another slot, at k
    outside: float  # a candidate outside the greedy list, at k
    n: int
    m: int

    def matrix(self) -> np.ndarray:
        """``(m, n)``: P(candidate at greedy rank r is shown at position k);
        rows ``0..n-1`` are the greedy list in order."""
        out = np.full((self.m, self.n), self.outside)
        out[: self.n, :] = self.other_greedy
        out[np.arange(self.n), np.arange(self.n)] = self.own
        return out


def epsilon_greedy_marginals(n: int, m: int, epsilon: float) -> EpsilonGreedyMarginals:
    """Exact marginals for a slate of ``n`` out of ``m`` candidates."""
    if m < 1 or n < 1:
        raise ConfigError("need at least one candidate and one slot")
    if not 0.0 <= epsilon <= 1.0:
        raise ConfigError("epsilon must lie in [0, 1]")
    n = min(n, m)
    h1 = _h(n - 1, m - n + 1, epsilon)
    h2 = _h(n - 2, m - n + 2, epsilon) if n >= 2 else 0.0
    return EpsilonGreedyMarginals(
        own=(1.0 - epsilon) + epsilon * h1,
        other_greedy=epsilon * epsilon * h2,
        outside=epsilon * h1,
        n=n,
        m=m,
    )


def epsilon_greedy(
    greedy: np.ndarray, m: int, epsilon: float, rng: np.random.Generator
) -> ExploredSlate:
    """Perturb the greedy list (candidate indices, best first) of ``m``
    candidates (indices ``0..m-1``) by per-slot epsilon-greedy."""
    greedy = np.asarray(greedy, dtype=np.int64)
    n = len(greedy)
    if n == 0:
        empty = np.zeros(0)
        return ExploredSlate(greedy, empty, empty.astype(bool), "epsilon_greedy")
    if n > m or len(np.unique(greedy)) != n or greedy.min() < 0 or greedy.max() >= m:
        raise ConfigError("the greedy list must be distinct candidate indices")
    explore = rng.random(n) < epsilon
    slate = greedy.copy()
    k = np.flatnonzero(explore)
    if len(k):
        pool_mask = np.ones(m, dtype=bool)
        pool_mask[greedy[~explore]] = False
        pool = np.flatnonzero(pool_mask)
        slate[k] = rng.choice(pool, size=len(k), replace=False)
    marg = epsilon_greedy_marginals(n, m, epsilon)
    rank = np.full(m, -1, dtype=np.int64)
    rank[greedy] = np.arange(n)
    shown_rank = rank[slate]
    prop = np.where(
        shown_rank == np.arange(n),
        marg.own,
        np.where(shown_rank >= 0, marg.other_greedy, marg.outside),
    )
    return ExploredSlate(slate, prop.astype(np.float64), explore, "epsilon_greedy")


def _top_n_rows(samples: np.ndarray, n: int) -> np.ndarray:
    """``(S, n)`` column indices of each row's ``n`` largest, best first."""
    part = np.argpartition(-samples, n - 1, axis=1)[:, :n]
    order = np.argsort(-np.take_along_axis(samples, part, axis=1), axis=1)
    top: np.ndarray = np.take_along_axis(part, order, axis=1)
    return top


def thompson(
    scores: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    scale: float | np.ndarray = 0.1,
    samples: int = 256,
) -> ExploredSlate:
    """Top ``n`` of one posterior draw, with Monte-Carlo propensities."""
    mean = np.asarray(scores, dtype=np.float64)
    m = len(mean)
    n = min(n, m)
    if n == 0:
        empty = np.zeros(0)
        return ExploredSlate(
            empty.astype(np.int64), empty, empty.astype(bool), "thompson"
        )
    sd = np.broadcast_to(np.asarray(scale, dtype=np.float64), (m,))
    if (sd <= 0).any() or samples < 2:
        raise ConfigError("thompson needs a positive scale and >= 2 samples")
    draws = mean[None, :] + sd[None, :] * rng.standard_normal((samples, m))
    top = _top_n_rows(draws, n)  # (S, n); row 0 is the realised draw
    slate = top[0]
    prop = (top == slate[None, :]).sum(axis=0) / samples
    return ExploredSlate(
        slate.astype(np.int64), prop.astype(np.float64), np.zeros(n, bool), "thompson"
    )


def thompson_marginals(
    scores: np.ndarray,
    n: int,
    rng: np.random.Generator,
    *,
    scale: float | np.ndarray = 0.1,
    samples: int = 4096,
) -> np.ndarray:
    """``(m, n)`` Monte-Carlo estimate of P(candidate at position k) under
    Thompson sampling (for evaluating a Thompson *target* policy)."""
    mean = np.asarray(scores, dtype=np.float64)
    m = len(mean)
    n = min(n, m)
    sd = np.broadcast_to(np.asarray(scale, dtype=np.float64), (m,))
    draws = mean[None, :] + sd[None, :] * rng.standard_normal((samples, m))
    top = _top_n_rows(draws, n)
    out = np.zeros((m, n))
    for k in range(n):
        out[:, k] = np.bincount(top[:, k], minlength=m) / samples
    return out


def explore(
    config: ExplorationConfig,
    scores: np.ndarray,
    greedy: np.ndarray,
    rng: np.random.Generator,
) -> ExploredSlate:
    """Apply ``config`` to a reranked list: ``scores`` ``(m,)`` over the
    candidates, ``greedy`` the reranker's choice (candidate indices)."""
    greedy = np.asarray(greedy, dtype=np.int64)
    m = len(scores)
    if config.kind == "epsilon_greedy" and config.enabled:
        return epsilon_greedy(greedy, m, config.epsilon, rng)
    if config.kind == "thompson":
        return thompson(
            scores,
            len(greedy),
            rng,
            scale=config.thompson_scale,
            samples=config.thompson_samples,
        )
    ones = np.ones(len(greedy))
    return ExploredSlate(greedy, ones, np.zeros(len(greedy), bool), "greedy")
