"""The one rule for ordering events, used everywhere the engine orders them.

Events are ordered by (user, timestamp, tie key). Events of one user that
share a timestamp (a same-second burst: in ML-100K about half of all
consecutive events) have lost their true order; the *tie key* decides it:

``TieOrder("random", seed)`` (the default, seed :data:`DEFAULT_TIE_SEED`)
    A seeded random permutation inside every burst: the key is a 64-bit
    hash (SplitMix64 finaliser) of ``(seed, user index, item index)``. The
    same seed gives the same order in every run and on every machine; another
    seed gives an independent order. The key depends on the event, not on
    where it sits in an array, so selecting a subset of events and
    concatenating containers (train + validation) keeps their relative order:
    the splits, every model's training sequences, the validation and test
    histories and the recency features all see one order.
``TieOrder("item")``
    Ascending item index (= ascending external item id: vocabularies are
    sorted). Only for comparison with published peer figures, which use it;
    it leaks an artifact (inside a burst the next item has a larger id) that
    live event streams do not have.

The chosen rule is recorded with the data (``Interactions.ties``,
``Interactions.describe()``) and from there in results files, ablation
reports and serving manifests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from recommendations.engine.errors import ConfigError

__all__ = ["DEFAULT_TIE_SEED", "TieOrder", "event_order", "parse_ties"]

DEFAULT_TIE_SEED = 0
"""Seed of the default random tie order (recorded wherever it is used)."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64's finaliser (Steele et al., OOPSLA 2014): a bijection of
    uint64 whose outputs look independent for consecutive inputs."""
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


@dataclass(frozen=True)
class TieOrder:
    """How events of one user with equal timestamps are ordered (module doc)."""

    mode: Literal["random", "item"] = "random"
    seed: int = DEFAULT_TIE_SEED

    def __post_init__(self) -> None:
        if self.mode not in ("random", "item"):
            raise ConfigError(f"unknown tie order {self.mode!r}; use random or item")

    def keys(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The tie key of each event (``users``/``items``: dense indices)."""
        items = np.asarray(items, dtype=np.int64)
        if self.mode == "item":
            return items
        u = np.asarray(users, dtype=np.int64).astype(np.uint64)
        i = items.astype(np.uint64)
        seed = np.full(1, self.seed % 2**64, dtype=np.uint64)
        with np.errstate(over="ignore"):
            return _mix(_mix(_mix(seed) ^ u) ^ i)

    def describe(self) -> dict[str, Any]:
        """What results files and manifests record."""
        if self.mode == "item":
            return {"ties": "item"}
        return {"ties": "random", "tie_seed": self.seed}

    def __str__(self) -> str:
        return "item" if self.mode == "item" else f"random:{self.seed}"


def parse_ties(spec: str | TieOrder | None) -> TieOrder:
    """``None`` / ``"random"`` (default seed), ``"random:SEED"``, ``"item"``."""
    if isinstance(spec, TieOrder):
        return spec
    if spec is None or spec == "random":
        return TieOrder()
    if spec == "item":
        return TieOrder("item")
    mode, _, seed = spec.partition(":")
    if mode == "random" and seed.lstrip("-").isdigit():
        return TieOrder("random", int(seed))
    raise ConfigError(f"tie order {spec!r}: use random, random:SEED or item")


def event_order(
    users: np.ndarray,
    timestamps: np.ndarray,
    items: np.ndarray,
    ties: TieOrder,
) -> npt.NDArray[np.intp]:
    """Indices that sort events by (user, timestamp, tie key) (module doc).

    Equal keys (the same item twice in one second) keep their input order.
    """
    order: npt.NDArray[np.intp] = np.lexsort(
        (ties.keys(users, items), timestamps, users)
    )
    return order
