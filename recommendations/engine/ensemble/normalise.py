"""Per-request score normalisation before blending.

Each member model scores on its own scale (logits, negative distances,
cosine sums...), so scores are put on a common scale per model *per user*
(per request) before they are weighted:

- ``zscore`` (default): ``(s - mean) / std`` over the items the user can
  still be recommended (history items are left out of the statistics, since
  several models give them extreme scores). It keeps how *confident* a model
  is: a model whose top items stand far above the rest moves the blend more.
- ``rank``: the item's rank percentile in ``[0, 1]`` among those items
  (1 = best). Robust to outliers and heavy tails, but flattens confidence.

Both are computed on the request's own items (the full catalog offline, the
retrieved candidates when serving), so no global statistics have to be kept
in sync with the models. Which one blends better is decided per fitted
ensemble on validation data (``selection.select_weights`` tries both).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from recommendations.engine.errors import ConfigError

Normalisation = Literal["zscore", "rank"]
METHODS: tuple[Normalisation, ...] = ("zscore", "rank")


def normalise(
    scores: np.ndarray,
    method: Normalisation = "zscore",
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Normalise each row of ``scores`` ``(B, C)``; returns float32 ``(B, C)``.

    Args:
        scores: raw scores, one row per user (request).
        method: ``zscore`` or ``rank`` (see module docstring).
        exclude: optional boolean ``(B, C)`` mask of items left out of the
            statistics (the user's history); their normalised value is
            still computed (and should be ignored by the caller).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ConfigError("scores must be a (users, items) matrix")
    s = np.where(np.isfinite(s), s, np.nan)
    keep = ~np.isnan(s)
    if exclude is not None:
        keep &= ~np.asarray(exclude, dtype=bool)
    if method == "zscore":
        masked = np.where(keep, s, np.nan)
        with np.errstate(invalid="ignore"):
            mean = np.nanmean(masked, axis=1, keepdims=True) if s.size else masked
            std = np.nanstd(masked, axis=1, keepdims=True) if s.size else masked
        mean = np.nan_to_num(mean)
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        out = (s - mean) / std
        z: np.ndarray = np.nan_to_num(out, nan=-10.0).astype(np.float32)
        return z
    if method == "rank":
        # Scores within 1e-5 of the row's range are ties: float noise between
        # backends (PyTorch vs ONNX Runtime, ~1e-6) must not reorder tie groups.
        kept = np.where(keep, s, np.nan)
        with np.errstate(invalid="ignore"):
            low = np.nanmin(kept, axis=1, keepdims=True) if s.size else kept
            span = np.nanmax(kept, axis=1, keepdims=True) - low if s.size else kept
        low, span = np.nan_to_num(low), np.nan_to_num(span)
        span = np.where(span > 0, span, 1.0)
        quantised = np.round((s - low) / span * 1e5)
        # Items outside the statistics rank below every kept item.
        filled = np.where(keep, quantised, -np.inf)
        ranks = average_ranks(filled)
        n_out = (~keep).sum(axis=1, keepdims=True)
        n_keep = np.maximum(keep.sum(axis=1, keepdims=True), 1)
        out = (ranks - n_out) / n_keep  # kept items in (0, 1], 1 = best
        return np.where(keep, out, 0.0).astype(np.float32)
    raise ConfigError(f"unknown normalisation {method!r}; use one of {METHODS}")


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Per row, the 1-based rank of each value, ties sharing the mean of their
    ranks: ``scipy.stats.rankdata(values, axis=1, method="average")`` (a test
    holds them equal) at a fraction of its cost on serving-sized rows (one
    ``np.unique`` per row: ~0.03 ms against ~0.2 ms for 300 candidates)."""
    out = np.empty(values.shape, dtype=np.float64)
    for row in range(values.shape[0]):
        _, inverse, counts = np.unique(
            values[row], return_inverse=True, return_counts=True
        )
        ends = np.cumsum(counts)
        out[row] = (ends - (counts - 1) / 2.0)[inverse]
    return out
