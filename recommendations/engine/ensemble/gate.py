"""The uncertainty gate: fall back to content candidates when members disagree.

Disagreement of one user's candidate list is the weighted variance of the
members' normalised scores, ``sum_m w_m (z_m - zbar)^2`` with ``zbar`` the
blend, averaged over the ``candidates`` best items of the blend (what the
user would be shown). It is high when the members rank the same items very
differently, i.e. when the blend is a compromise nobody believes in.

The threshold is calibrated on validation: among the disagreement quantiles
``quantiles`` of the validation users (and "never"), the one whose gated
ranking (content fallback for users above it) has the best validation
NDCG@10 - ties go to the higher threshold (the gate fires less).

The content fallback used offline is genre-profile similarity (cosine of the
item's genres with the mean genre vector of the user's history) plus a small
log-popularity prior; the serving pipeline uses its TF-IDF content model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from recommendations.engine.data.interactions import History
from recommendations.engine.ensemble.selection import BlendData

if TYPE_CHECKING:  # pandas is not needed to serve (cold boot)
    import pandas as pd

QUANTILES: tuple[float, ...] = (0.5, 0.75, 0.9, 0.95, 0.99)


def disagreement(
    normalised: np.ndarray, weights: np.ndarray, *, candidates: int | None = 100,
    exclude: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """``(B,)`` weighted variance across members, averaged over the top items.

    Args:
        normalised: ``(M, B, C)`` normalised member scores.
        weights: ``(M,)`` on the simplex.
        candidates: average over this many best items of the blend
            (``None``: every item).
        exclude: ``(B, C)`` items that are not candidates (the history).
    """
    w = np.asarray(weights, dtype=np.float64)[:, None, None]
    z = np.asarray(normalised, dtype=np.float64)
    blend = (w * z).sum(axis=0)  # (B, C)
    var = (w * (z - blend) ** 2).sum(axis=0)  # (B, C)
    ranked = np.where(exclude, -np.inf, blend) if exclude is not None else blend
    spread: np.ndarray  # (B,)
    if candidates is None or candidates >= blend.shape[1]:
        if exclude is None:
            spread = var.mean(axis=1)
            return spread
        keep = ~exclude
        spread = (var * keep).sum(axis=1) / np.maximum(keep.sum(axis=1), 1)
        return spread
    top = np.argpartition(-ranked, candidates - 1, axis=1)[:, :candidates]
    spread = np.take_along_axis(var, top, axis=1).mean(axis=1)
    return spread


def genre_matrix(item_features: pd.DataFrame | None, n_items: int) -> np.ndarray:
    """``(N, G)`` multi-hot genres from an ``Interactions.item_features`` frame."""
    if item_features is None or "genres" not in item_features:
        return np.zeros((n_items, 0), dtype=np.float32)
    genres = item_features["genres"].reindex(range(n_items))
    names = sorted({g for gs in genres.dropna() for g in gs})
    col = {g: j for j, g in enumerate(names)}
    out = np.zeros((n_items, len(names)), dtype=np.float32)
    for i, gs in enumerate(genres):
        if isinstance(gs, (list, tuple, np.ndarray)):
            for g in gs:
                out[i, col[g]] = 1.0
    return out


def content_fallback_scores(
    histories: Sequence[History], genres: np.ndarray, item_counts: np.ndarray
) -> np.ndarray:
    """``(B, N)`` genre-profile cosine + 0.1 x normalised log-popularity."""
    g = np.asarray(genres, dtype=np.float64)
    norms = np.linalg.norm(g, axis=1)
    pop = np.log1p(np.asarray(item_counts, dtype=np.float64))
    pop = pop / max(pop.max(), 1e-12)
    out = np.empty((len(histories), len(pop)), dtype=np.float32)
    for b, h in enumerate(histories):
        profile = g[h.items].mean(axis=0) if len(h.items) and g.size else None
        if profile is None or not np.any(profile):
            out[b] = pop
            continue
        cos = g @ profile / np.maximum(norms * np.linalg.norm(profile), 1e-12)
        out[b] = cos + 0.1 * pop
    return out


@dataclass
class GateCalibration:
    threshold: float  # +inf = never fires
    fire_rate: float  # share of validation users above the threshold
    table: list[dict[str, float]]  # one row per candidate threshold
    candidates: int

    def fires(self, value: float | np.ndarray) -> bool | np.ndarray:
        return np.asarray(value) > self.threshold

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["threshold"] = None if np.isinf(self.threshold) else self.threshold
        return out


def gated_ndcg(
    data: BlendData,
    weights: np.ndarray,
    fallback: np.ndarray,
    gate_on: np.ndarray,
    k: int = 10,
    correction: float = 0.0,
) -> np.ndarray:
    """Per (user, item) pair NDCG@k when gated users get the fallback ranking."""
    s = data.blended(weights, correction)
    fb = np.where(data.exclude, -np.inf, fallback)
    s = np.where(gate_on[:, None], fb, s)
    target = s[data.rows, data.cols][:, None]
    rank = (s[data.rows] >= target).sum(axis=1) - 1
    return np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)


def calibrate_gate(
    data: BlendData,
    weights: np.ndarray,
    fallback: np.ndarray,
    *,
    quantiles: Sequence[float] = QUANTILES,
    candidates: int = 100,
    k: int = 10,
    correction: float = 0.0,
) -> GateCalibration:
    """Pick the threshold with the best validation NDCG@k (module docstring)."""
    d = disagreement(data.stack, weights, candidates=candidates, exclude=data.exclude)
    options = [float(np.quantile(d, q)) for q in quantiles] + [float("inf")]
    table = []
    for q, threshold in zip([*quantiles, 1.0], options, strict=True):
        on = d > threshold
        ndcg = float(gated_ndcg(data, weights, fallback, on, k, correction).mean())
        table.append(
            {"quantile": q, "threshold": threshold, "fire_rate": float(on.mean()),
             "ndcg": ndcg}
        )  # fmt: skip
    best = max(table, key=lambda r: (r["ndcg"], r["threshold"]))
    return GateCalibration(best["threshold"], best["fire_rate"], table, candidates)
