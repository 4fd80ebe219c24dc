"""Beyond-accuracy measures of top-K lists: coverage, exposure Gini, popularity."""

from __future__ import annotations

import numpy as np
import scipy.stats


def top_k(scores: np.ndarray, exclude: np.ndarray | None, k: int) -> np.ndarray:
    """Indices of the ``k`` best items per row, best first; ``(B, k)``."""
    s = np.where(np.isnan(scores), -np.inf, np.asarray(scores, dtype=np.float64))
    if exclude is not None:
        s = np.where(exclude, -np.inf, s)
    k = min(k, s.shape[1])
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of exposure counts (0 = equal exposure, 1 = one item)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    index = np.arange(1, n + 1)
    return float(((2 * index - n - 1) * x).sum() / (n * x.sum()))


HEAD_FRACTION = 0.2  # "long tail": items outside the top 20 % by popularity


def popularity_percentile(item_counts: np.ndarray) -> np.ndarray:
    """``(N,)`` each item's popularity percentile in ``(0, 1]`` (ties averaged)."""
    ranks: np.ndarray = scipy.stats.rankdata(item_counts, method="average")
    return ranks / max(len(item_counts), 1)


def head_items(item_counts: np.ndarray) -> np.ndarray:
    """Boolean ``(N,)``: the top 20 % of items by training popularity; the
    rest is the long tail."""
    return popularity_percentile(item_counts) > 1.0 - HEAD_FRACTION


def beyond_accuracy(
    recommended: np.ndarray, item_counts: np.ndarray
) -> dict[str, float]:
    """Coverage, Gini of exposure, mean popularity percentile, long-tail share.

    Args:
        recommended: ``(U, K)`` item indices of every user's top-K list.
        item_counts: ``(N,)`` training events per item (popularity).
    """
    n_items = len(item_counts)
    exposure = np.bincount(recommended.ravel(), minlength=n_items)
    percentile = popularity_percentile(item_counts)
    head = percentile > 1.0 - HEAD_FRACTION
    return {
        "coverage": float((exposure > 0).sum() / n_items),
        "gini": gini(exposure),
        "popularity_percentile": float(percentile[recommended].mean()),
        "long_tail_share": float((~head[recommended]).mean()),
    }
