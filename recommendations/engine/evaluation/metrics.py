"""Vectorised ranking metrics with pessimistic ties.

A target's rank (0-based) is the number of items placed before it in a list
sorted by score where every tie with a non-target goes *against* the target:

    rank(t) = #{non-target candidates c : s_c >= s_t}
            + #{other targets q : s_q > s_t, or s_q == s_t and q < t}

so a model that scores everything equally gets the worst possible rank, and
several targets of one user occupy distinct positions. Candidates are all
items except the user's excluded (history) items; targets are never excluded.
With one target, NDCG@K = 1 / log2(rank + 2) when rank < K.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import scipy.sparse as sp

KS: tuple[int, ...] = (5, 10, 20)
METRICS: tuple[str, ...] = ("hr", "ndcg", "mrr", "recall")


def _dense(m: sp.csr_matrix | np.ndarray) -> np.ndarray:
    if sp.issparse(m):  # scipy is untyped: issparse does not narrow ``m``
        dense: np.ndarray = cast("sp.csr_matrix", m).toarray().astype(bool)
        return dense
    return np.asarray(m, dtype=bool)


def target_ranks(
    scores: np.ndarray,
    targets: sp.csr_matrix | np.ndarray,
    exclude: sp.csr_matrix | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pessimistic 0-based ranks of every (row, target) pair.

    Args:
        scores: ``(B, N)`` scores; NaN counts as the lowest score.
        targets: ``(B, N)`` boolean/CSR mask of held-out items.
        exclude: ``(B, N)`` boolean/CSR mask of items left out of the ranking.

    Returns:
        ``rows`` ``(P,)``, ``ranks`` ``(P,)`` for each target pair (row-major),
        and ``n_candidates`` ``(B,)`` (non-excluded items, targets included).
    """
    scores = np.asarray(scores, dtype=np.float64)
    scores = np.where(np.isnan(scores), -np.inf, scores)  # (B, N)
    tgt = _dense(targets)  # (B, N)
    exc = np.zeros_like(tgt) if exclude is None else _dense(exclude) & ~tgt
    cand = ~exc & ~tgt  # non-target candidates
    rows, cols = np.nonzero(tgt)  # (P,)
    s_t = scores[rows, cols][:, None]  # (P, 1)
    s_rows = scores[rows]  # (P, N)
    before_nt = (cand[rows] & (s_rows >= s_t)).sum(axis=1)
    col_idx = np.arange(scores.shape[1])[None, :]
    before_t = (
        tgt[rows] & ((s_rows > s_t) | ((s_rows == s_t) & (col_idx < cols[:, None])))
    ).sum(axis=1)
    n_candidates = (~exc).sum(axis=1)
    return rows, (before_nt + before_t).astype(np.int64), n_candidates


def metrics_from_ranks(
    rows: np.ndarray, ranks: np.ndarray, n_rows: int, ks: Sequence[int] = KS
) -> dict[str, np.ndarray]:
    """Per-row HR/NDCG/MRR/Recall at each K from target ranks.

    Returns ``{"hr@10": (n_rows,), ...}``. Rows without targets get NaN.
    """
    n_targets = np.bincount(rows, minlength=n_rows).astype(np.float64)
    out: dict[str, np.ndarray] = {}
    gains = 1.0 / np.log2(ranks + 2.0)
    for k in ks:
        hit = ranks < k
        n_hits = np.bincount(rows, weights=hit, minlength=n_rows)
        dcg = np.bincount(rows, weights=np.where(hit, gains, 0.0), minlength=n_rows)
        ideal_len = np.minimum(n_targets, k).astype(np.int64)
        ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])
        best = np.full(n_rows, np.inf)
        np.minimum.at(best, rows, np.where(hit, ranks, np.inf))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"hr@{k}"] = np.where(n_targets > 0, (n_hits > 0) * 1.0, np.nan)
            out[f"ndcg@{k}"] = np.where(n_targets > 0, dcg / ideal[ideal_len], np.nan)
            out[f"mrr@{k}"] = np.where(n_targets > 0, 1.0 / (best + 1.0), np.nan)
            out[f"recall@{k}"] = np.where(n_targets > 0, n_hits / n_targets, np.nan)
    return out


def ranking_metrics(
    scores: np.ndarray,
    targets: sp.csr_matrix | np.ndarray,
    exclude: sp.csr_matrix | np.ndarray | None = None,
    ks: Sequence[int] = KS,
) -> dict[str, np.ndarray]:
    """Per-row metrics of a score matrix (see :func:`target_ranks`)."""
    rows, ranks, _ = target_ranks(scores, targets, exclude)
    return metrics_from_ranks(rows, ranks, np.asarray(scores).shape[0], ks)


def sample_negatives(
    user_ids: np.ndarray, interacted: sp.csr_matrix, n_negatives: int, seed: int
) -> sp.csr_matrix:
    """``n_negatives`` items per user drawn uniformly from never-interacted items.

    The draw depends only on ``(seed, user id)``, so every model and batch size
    sees the same negatives. Users with fewer free items get all of them.
    """
    n_items = interacted.shape[1]
    seen = _dense(interacted)  # (B, N)
    keys = np.empty(seen.shape)
    for row, uid in enumerate(user_ids):
        keys[row] = np.random.default_rng([seed, int(uid)]).random(n_items)
    keys[seen] = np.inf
    take = min(n_negatives, n_items)
    idx = np.argpartition(keys, take - 1, axis=1)[:, :take]  # (B, take)
    valid = np.isfinite(np.take_along_axis(keys, idx, axis=1))
    rows = np.repeat(np.arange(len(user_ids)), take)[valid.ravel()]
    cols = idx.ravel()[valid.ravel()]
    data = np.ones(len(rows), dtype=bool)
    return sp.csr_matrix((data, (rows, cols)), shape=seen.shape)
