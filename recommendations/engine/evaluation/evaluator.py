"""Runs a scorer over an :class:`EvalTask` and computes every metric.

A *scorer* is anything with ``score(histories) -> (B, n_items)`` (every model
in the registry). Scores are computed in user batches so memory stays flat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import scipy.sparse as sp

from recommendations.engine.data.interactions import History
from recommendations.engine.data.splits import EvalTask
from recommendations.engine.evaluation.beyond import beyond_accuracy, top_k
from recommendations.engine.evaluation.metrics import (
    KS,
    metrics_from_ranks,
    sample_negatives,
    target_ranks,
)
from recommendations.engine.evaluation.stats import mean_ci

T = TypeVar("T")

logger = logging.getLogger(__name__)


class Scorer(Protocol):
    def score(self, histories: Sequence[History]) -> np.ndarray: ...


@dataclass
class EvaluationResult:
    """Per-user metric vectors (aligned with ``users``) and their summaries."""

    users: np.ndarray
    full: dict[str, np.ndarray]
    sampled: dict[str, np.ndarray] = field(default_factory=dict)
    beyond: dict[str, float] = field(default_factory=dict)
    scoring_seconds: float = 0.0
    scores: np.ndarray | None = None  # (U, N) when kept for --dump-scores

    def mean(self, metric: str, *, sampled: bool = False) -> float:
        vec = (self.sampled if sampled else self.full)[metric]
        return float(np.nanmean(vec))

    def summary(self) -> dict[str, Any]:
        return {
            "full": {k: mean_ci(v) for k, v in self.full.items()},
            "sampled": {k: mean_ci(v) for k, v in self.sampled.items()},
            "beyond": self.beyond,
            "scoring_seconds": self.scoring_seconds,
            "users": len(self.users),
        }


def _batches(n: int, size: int) -> list[slice]:
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def evaluate(
    scorer: Scorer,
    task: EvalTask,
    *,
    item_counts: np.ndarray | None = None,
    interacted: sp.csr_matrix | None = None,
    n_negatives: int = 100,
    sample_seed: int = 0,
    ks: Sequence[int] = KS,
    batch_size: int = 256,
    keep_scores: bool = False,
    top_n: int = 10,
) -> EvaluationResult:
    """Full-ranking (+ sampled, + beyond-accuracy) evaluation of ``scorer``.

    Args:
        item_counts: training popularity ``(N,)``; enables beyond-accuracy.
        interacted: ``(n_users_total, N)`` every item each user ever touched
            (train + valid + test); enables the sampled protocol.
        n_negatives: negatives per user for the sampled protocol.
    """
    n_rows = len(task)
    full_parts: list[dict[str, np.ndarray]] = []
    sampled_parts: list[dict[str, np.ndarray]] = []
    recommended: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    seconds = 0.0
    for sl in _batches(n_rows, batch_size):
        started = time.perf_counter()
        scores = np.asarray(scorer.score(task.histories[sl]), dtype=np.float32)
        seconds += time.perf_counter() - started
        targets, exclude = task.targets[sl], task.exclude[sl]
        rows, ranks, _ = target_ranks(scores, targets, exclude)
        full_parts.append(metrics_from_ranks(rows, ranks, scores.shape[0], ks))
        if interacted is not None and n_negatives > 0:
            users = task.users[sl]
            negatives = sample_negatives(
                users, interacted[users], n_negatives, sample_seed
            )
            keep = (negatives + targets).astype(bool).toarray()
            rows, ranks, _ = target_ranks(scores, targets, ~keep)
            sampled_parts.append(metrics_from_ranks(rows, ranks, scores.shape[0], ks))
        if item_counts is not None:
            recommended.append(top_k(scores, exclude.toarray().astype(bool), top_n))
        if keep_scores:
            kept.append(scores)
    full = {k: np.concatenate([p[k] for p in full_parts]) for k in full_parts[0]} if (
        full_parts) else {}  # fmt: skip
    sampled = (
        {k: np.concatenate([p[k] for p in sampled_parts]) for k in sampled_parts[0]}
        if sampled_parts else {}
    )  # fmt: skip
    beyond = (
        beyond_accuracy(np.concatenate(recommended), item_counts)
        if recommended and item_counts is not None
        else {}
    )
    return EvaluationResult(
        users=task.users,
        full=full,
        sampled=sampled,
        beyond=beyond,
        scoring_seconds=seconds,
        scores=np.concatenate(kept) if kept else None,
    )


def validation_ndcg(
    scorer: Scorer, task: EvalTask, k: int = 10, batch_size: int = 512
) -> float:
    """Mean full-ranking NDCG@k: the early-stopping and model-selection criterion."""
    if len(task) == 0:
        return float("nan")
    total = 0.0
    for sl in _batches(len(task), batch_size):
        scores = np.asarray(scorer.score(task.histories[sl]), dtype=np.float32)
        rows, ranks, _ = target_ranks(scores, task.targets[sl], task.exclude[sl])
        total += float(
            np.nansum(
                metrics_from_ranks(rows, ranks, scores.shape[0], (k,))[f"ndcg@{k}"]
            )
        )
    return total / len(task)


def select_on_validation(
    scorer: Scorer,
    task: EvalTask,
    candidates: Iterable[T],
    apply: Callable[[T], None],
) -> tuple[T, dict[T, float]]:
    """Try each candidate setting (``apply`` installs it on ``scorer``), keep the
    one with the best validation NDCG@10 (the first on ties) and leave it applied.

    Returns the winner and every candidate's validation NDCG@10.
    """
    results: dict[T, float] = {}
    for candidate in candidates:
        apply(candidate)
        results[candidate] = validation_ndcg(scorer, task)
    best = max(results, key=results.__getitem__)
    apply(best)
    return best, results
