"""Exposure propensities from item popularity (for historical data).

Without a log of what the system showed, the chance that a user was exposed
to item ``i`` is modelled as a power of its popularity, after Yang et al.,
"Unbiased Offline Recommender Evaluation for Missing-Not-At-Random Implicit
Feedback", RecSys 2018: ``p_i = p_max * (n_i / n_max) ** ((gamma + 1) / 2)``,
where ``gamma`` is the power-law exponent of the observed popularity
distribution. Here ``gamma`` is fitted as the negated least-squares slope of
``log n_i`` on ``log rank_i`` over the items with at least one event (a
Zipf-fit heuristic; the paper fits the same kind of power law). Items with no
events get the smallest observed propensity, and every propensity is floored
at ``floor`` so importance weights stay finite.
"""

from __future__ import annotations

import numpy as np

from recommendations.engine.errors import ConfigError


def fit_popularity_power(item_counts: np.ndarray) -> float:
    """Zipf exponent ``gamma`` of ``item_counts`` (``n(rank) ~ rank ** -gamma``)."""
    counts = np.sort(np.asarray(item_counts, dtype=np.float64))[::-1]
    counts = counts[counts > 0]
    if len(counts) < 2:
        return 0.0
    ranks = np.arange(1, len(counts) + 1, dtype=np.float64)
    slope = np.polyfit(np.log(ranks), np.log(counts), 1)[0]
    return float(max(-slope, 0.0))


def exposure_propensities(
    item_counts: np.ndarray,
    *,
    power: float | None = None,
    p_max: float = 1.0,
    floor: float = 1e-3,
) -> np.ndarray:
    """Per-item exposure propensities ``(N,)`` in ``[floor, p_max]``.

    Args:
        item_counts: events per item.
        power: exponent on relative popularity; ``None`` uses
            ``(gamma + 1) / 2`` with ``gamma`` from :func:`fit_popularity_power`.
        p_max: propensity of the most popular item.
        floor: lower bound of every propensity.
    """
    counts = np.asarray(item_counts, dtype=np.float64)
    if counts.ndim != 1 or not len(counts) or (counts < 0).any():
        raise ConfigError("item_counts must be a non-empty 1-d array of counts >= 0")
    if not (0 < floor <= p_max <= 1):
        raise ConfigError("need 0 < floor <= p_max <= 1")
    if counts.max() == 0:
        return np.full(len(counts), p_max)
    if power is None:
        power = (fit_popularity_power(counts) + 1.0) / 2.0
    if power < 0:
        raise ConfigError("power must be >= 0")
    positive = counts[counts > 0]
    filled = np.where(counts > 0, counts, positive.min())
    p = p_max * (filled / counts.max()) ** power
    clipped: np.ndarray = np.clip(p, floor, p_max)
    return clipped
