"""Train / validation / test splits.

``leave_one_out``
    Per user, events in the container's order (timestamp, then the tie rule
    of :mod:`~recommendations.engine.data.ordering`: a seeded random order
    inside a same-second burst unless the item-id order was asked for): the
    last is test, the second-to-last validation, the rest train. Users with
    two events give train + test, users with one event give train only.
``global_temporal``
    One cut-off time for everybody: events before ``valid_start`` train,
    ``[valid_start, test_start)`` validation, from ``test_start`` on test.
    Only users with at least one training event are evaluated.

Evaluation always ranks against the user's *known* items: validation uses
the train history; test uses train + validation as the history, as in the
issue's protocol.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

from recommendations.engine.data.interactions import History, Interactions
from recommendations.engine.errors import ConfigError

logger = logging.getLogger(__name__)

Protocol = Literal["loo", "temporal"]


@dataclass(frozen=True)
class EvalTask:
    """What an evaluator needs: histories to score from, targets to find.

    ``users``: dense user indices evaluated (each has >= 1 target).
    ``histories``: their histories (what the model may use).
    ``exclude``: ``(len(users), n_items)`` CSR of items to leave out of the
    ranking (the history); ``targets``: ``(len(users), n_items)`` CSR of
    held-out items. Targets are never excluded.
    """

    users: np.ndarray
    histories: list[History]
    exclude: sp.csr_matrix
    targets: sp.csr_matrix

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class Split:
    """The three parts of a split, all sharing the full data's vocabularies."""

    protocol: str
    full: Interactions
    train: Interactions
    valid: Interactions
    test: Interactions

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "valid": len(self.valid),
            "test": len(self.test),
        }

    def validation_task(self) -> EvalTask:
        """Rank validation items given the train history."""
        return make_task(self.train, self.valid)

    def test_task(self) -> EvalTask:
        """Rank test items given the train + validation history."""
        return make_task(self.train_and_valid(), self.test)

    def train_and_valid(self) -> Interactions:
        if "tv" not in self.full._cache:
            self.full._cache["tv"] = self.train.concat(self.valid)
        train_and_valid: Interactions = self.full._cache["tv"]
        return train_and_valid


def make_task(history: Interactions, held_out: Interactions) -> EvalTask:
    targets_all = held_out.matrix()
    users = np.flatnonzero(np.diff(targets_all.indptr) > 0)
    targets = targets_all[users]
    exclude = history.matrix()[users]
    # A re-consumed item is still a target: never hide it from the ranking.
    exclude = (exclude - exclude.multiply(targets)).tocsr()
    exclude.eliminate_zeros()
    return EvalTask(users, history.histories(users), exclude, targets.tocsr())


def leave_one_out(data: Interactions) -> Split:
    """Temporal leave-one-out (see module docstring)."""
    ptr = data.user_ptr
    counts = np.diff(ptr)
    last = ptr[1:] - 1  # index of each user's last event (events are sorted)
    part = np.zeros(data.n_events, dtype=np.int8)  # 0 train, 1 valid, 2 test
    has_test = counts >= 2
    part[last[has_test]] = 2
    has_valid = counts >= 3
    part[last[has_valid] - 1] = 1
    split = Split(
        "loo", data, data.select(part == 0), data.select(part == 1),
        data.select(part == 2),
    )  # fmt: skip
    logger.info("leave-one-out split", extra=split.sizes())
    return split


def global_temporal(
    data: Interactions, *, test_fraction: float = 0.1, valid_fraction: float = 0.1
) -> Split:
    """Global time split at the quantiles that leave the given event fractions."""
    if not (0 < test_fraction < 1 and 0 <= valid_fraction < 1):
        raise ConfigError("fractions must lie in (0, 1)")
    if test_fraction + valid_fraction >= 1:
        raise ConfigError("test_fraction + valid_fraction must be < 1")
    t = data.timestamps
    test_start = np.quantile(t, 1 - test_fraction, method="higher")
    valid_start = np.quantile(t, 1 - test_fraction - valid_fraction, method="higher")
    train_mask = t < valid_start
    seen = np.zeros(data.n_users, dtype=bool)
    seen[data.user_index[train_mask]] = True
    known = seen[data.user_index]
    valid_mask = (t >= valid_start) & (t < test_start) & known
    test_mask = (t >= test_start) & known
    split = Split(
        "temporal", data, data.select(train_mask), data.select(valid_mask),
        data.select(test_mask),
    )  # fmt: skip
    logger.info("global temporal split", extra=split.sizes())
    return split


def make_split(data: Interactions, protocol: str) -> Split:
    if protocol == "loo":
        return leave_one_out(data)
    if protocol == "temporal":
        return global_temporal(data)
    raise ConfigError(f"unknown protocol {protocol!r}; use 'loo' or 'temporal'")
