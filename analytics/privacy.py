"""Differentially private counts with OpenDP (the mechanism, no Django).

The guarantee, in plain words: **one user** is the unit of privacy. Whatever
one person did — every rating, click and watch in the log, or none at all —
changes the probability of any released table by at most a factor of
``e^epsilon``. Two mechanisms make that true:

1. *Bounded contribution.* Before counting, each user's records (one record
   per counted cell, e.g. (age band, genre)) are cut to at most
   ``max_contributions`` — a seeded random sample of theirs when they have
   more. Adding or removing one user therefore changes the vector of counts by
   at most ``max_contributions`` in L1 distance.
2. *Discrete Laplace noise* of scale ``max_contributions / epsilon`` is added
   to every count (OpenDP's ``make_count_by_categories >> then_laplace``, whose
   privacy map gives exactly ``epsilon`` for that L1 distance).

The group keys (demographic values x genres, or x catalog movies) are *public*:
they come from fixed lists and the catalog, never from which groups happen to
have users, and every key is released (a noisy zero included), so the set of
released groups says nothing about anybody. Anything computed from a release
afterwards (clamping at zero, picking the top movies of a group) is
post-processing and costs no privacy.

Releases add up: two releases of epsilon 0.5 about the same data give away at
most epsilon 1.0 (sequential composition). The ledger (``analytics.services``)
enforces a cap per data set and calendar month, and an identical query in the
same month gets its earlier answer back rather than fresh noise (averaging
fresh answers would wear the noise away).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import opendp.prelude as dp

dp.enable_features("contrib")

MECHANISM = "discrete Laplace (OpenDP make_count_by_categories >> then_laplace)"
UNIT = "user"


@dataclass(frozen=True)
class NoisyCounts:
    keys: list[str]
    counts: list[int]
    epsilon: float
    scale: float
    max_contributions: int
    records_kept: int
    records_dropped: int


def bound_contributions(
    records: Iterable[tuple[int, str]], *, max_contributions: int, seed: int
) -> tuple[list[str], int]:
    """Each user's keys cut to ``max_contributions`` (a sample seeded by the
    user and ``seed``, so a repeat run keeps the same records and the choice
    depends on nobody else's data). Returns the kept keys and how many
    records were dropped. ``records`` are ``(user_id, key)`` in any order."""
    by_user: dict[int, list[str]] = {}
    for user_id, key in records:
        by_user.setdefault(user_id, []).append(key)
    kept: list[str] = []
    dropped = 0
    for user_id, keys in by_user.items():
        if len(keys) > max_contributions:
            rng = random.Random(f"{seed}:{user_id}")
            dropped += len(keys) - max_contributions
            keys = rng.sample(sorted(keys), max_contributions)
        kept.extend(keys)
    return kept, dropped


def scale_for(epsilon: float, max_contributions: int) -> float:
    """The discrete-Laplace scale that spends exactly ``epsilon``."""
    return max_contributions / epsilon


def count_measurement(
    keys: Sequence[str], *, epsilon: float, max_contributions: int
) -> tuple[Any, float]:
    """The OpenDP measurement (counts of every public key + noise) and its
    scale; checks with OpenDP's own privacy map that it spends ``epsilon``."""
    scale = scale_for(epsilon, max_contributions)
    measurement = dp.t.make_count_by_categories(
        dp.vector_domain(dp.atom_domain(T=str)),
        dp.symmetric_distance(),
        categories=list(keys),
        null_category=False,
        TOA=int,
    ) >> dp.m.then_laplace(scale=scale)
    spent = measurement.map(max_contributions)
    if spent > epsilon * (1 + 1e-9):
        raise ValueError(f"measurement spends {spent}, more than {epsilon}")
    return measurement, scale


def noisy_counts(
    records: Iterable[tuple[int, str]],
    *,
    keys: Sequence[str],
    epsilon: float,
    max_contributions: int,
    seed: int = 0,
) -> NoisyCounts:
    """Noisy counts of ``(user_id, key)`` records for every public key."""
    kept, dropped = bound_contributions(
        records, max_contributions=max_contributions, seed=seed
    )
    measurement, scale = count_measurement(
        keys, epsilon=epsilon, max_contributions=max_contributions
    )
    counts = [int(c) for c in measurement(kept)]
    return NoisyCounts(
        keys=list(keys),
        counts=counts,
        epsilon=epsilon,
        scale=scale,
        max_contributions=max_contributions,
        records_kept=len(kept),
        records_dropped=dropped,
    )


def discrete_laplace_pmf(k: Any, scale: float) -> Any:
    """P(noise = k) of the discrete Laplace with ``scale`` (OpenDP's
    parameterisation: P(k) proportional to exp(-|k| / scale))."""
    import numpy as np

    q = np.exp(-1.0 / scale)
    return (1 - q) / (1 + q) * q ** np.abs(k)
