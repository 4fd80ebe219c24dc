"""Deterministic A/B assignment, compatible with GrowthBook's SDKs.

A user's variant is a pure function of the experiment's seed (its key) and
the user's id, so a user always sees the same variant, any process (or any
GrowthBook SDK, or a SQL query) reproduces the split, and no assignment is
stored. The functions follow GrowthBook's SDK specification (the reference
implementation is ``growthbook/core.py`` of ``growthbook-python``, MIT; the
test vectors are the SDK's ``tests/cases.json``, spec 0.7.1):

- ``fnv1a32(s)``: 32-bit FNV-1a (Fowler, Noll & Vo; offset basis
  ``0x811C9DC5``, prime ``0x01000193``) over the string's characters, one
  code point per step (ASCII ids, as here, are the same in every SDK);
- ``hash(seed, value, 1) = (fnv1a32(value + seed) % 1000) / 1000``;
- ``hash(seed, value, 2) = (fnv1a32(str(fnv1a32(seed + value))) % 10000)
  / 10000`` (the default of new GrowthBook experiments, and ours);
- ``bucket_ranges(n, coverage, weights)``: variant ``i`` owns
  ``[c_i, c_i + coverage * w_i)`` with ``c_i`` the cumulative weight
  (invalid weights fall back to equal weights, as in the SDK);
- ``choose_variation(h, ranges)``: the first range holding ``h``, else -1
  (not in the experiment: serve the default).
"""

from __future__ import annotations

from collections.abc import Sequence

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a of ``text`` (one step per character's code point)."""
    h = _FNV_OFFSET
    for ch in text:
        h = ((h ^ ord(ch)) * _FNV_PRIME) & _MASK
    return h


def gb_hash(seed: str, value: str, version: int = 2) -> float | None:
    """GrowthBook's bucketing hash in ``[0, 1)``; ``None`` for an unknown version."""
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    return None


def equal_weights(n: int) -> list[float]:
    return [1.0 / n] * n if n >= 1 else []


def bucket_ranges(
    n: int, coverage: float = 1.0, weights: Sequence[float] | None = None
) -> list[tuple[float, float]]:
    """Each variant's ``[start, end)`` slice of the hash space."""
    coverage = min(max(coverage, 0.0), 1.0)
    w = list(weights) if weights is not None else equal_weights(n)
    if len(w) != n or not 0.99 <= sum(w) <= 1.01:
        w = equal_weights(n)
    out: list[tuple[float, float]] = []
    cumulative = 0.0
    for weight in w:
        start = cumulative
        cumulative += weight
        out.append((start, start + coverage * weight))
    return out


def choose_variation(h: float, ranges: Sequence[tuple[float, float]]) -> int:
    """Index of the range holding ``h``, or -1."""
    for i, (start, end) in enumerate(ranges):
        if start <= h < end:
            return i
    return -1


def assign(
    seed: str,
    user: str,
    weights: Sequence[float],
    *,
    coverage: float = 1.0,
    version: int = 2,
) -> int:
    """The variant of ``user`` in the experiment seeded ``seed`` (-1: not in it)."""
    h = gb_hash(seed, user, version)
    if h is None:
        return -1
    return choose_variation(h, bucket_ranges(len(weights), coverage, weights))
