"""KAN's feature construction in numpy + scipy only (no torch).

:class:`KanFeatures` turns histories x candidate items into the standardised
``(B, C, F)`` feature tensor the KAN scores, from the model's fitted tables
(popularity, year, genres, last / first seen, SVD embeddings, co-occurrence
and transition matrices, feature mean / std). The model (``models/kan.py``)
uses it for training and scoring; serving tier 2 builds it from ``state.npz``
without importing torch (``onnx/feeds.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommendations.engine.data.interactions import History
from recommendations.engine.onnx.inputs import OnnxFeeds

FEATURES: tuple[str, ...] = (
    "item_log_pop",
    "item_recent_log_pop",
    "item_year",
    "user_log_activity",
    "genre_affinity",
    "year_gap",
    "log_days_since_item_last_seen",
    "log_days_since_item_first_seen",
    "cooc_last",
    "cooc_recent",
    "cooc_history",
    "svd_recent",
    "transition_last",
)
DAY = 86_400.0


class KanFeatures:
    """Feature builder over fitted KAN tables (see the module docstring).

    Args:
        tables: the model's tables (``log_pop``, ``recent_log_pop``, ``year``,
            ``genres``, ``last_seen``, ``first_seen``, ``t_end``, ``emb``,
            ``feat_mean``, ``feat_std`` and the CSR parts ``cooc_*`` /
            ``trans_*``).
        n_items: catalog size.
        recent: how many of the latest history items count as "recent".
        recent_decay: exponential decay of the recent items' weights.
        cache: where the CSR tables built from ``tables`` are kept (the model
            passes its own, cleared whenever its tables change).
    """

    def __init__(
        self,
        tables: Mapping[str, np.ndarray],
        n_items: int,
        *,
        recent: int,
        recent_decay: float,
        cache: dict[str, sp.csr_matrix] | None = None,
    ) -> None:
        self.tables = tables
        self.n_items = n_items
        self.recent = recent
        self.recent_decay = recent_decay
        self._sparse = {} if cache is None else cache

    def matrix(self, name: str) -> sp.csr_matrix:
        """The ``(N, N)`` CSR table ``name`` (``cooc`` / ``trans``), built once."""
        if name not in self._sparse:
            t = self.tables
            self._sparse[name] = sp.csr_matrix(
                (t[f"{name}_data"], t[f"{name}_indices"], t[f"{name}_indptr"]),
                shape=(self.n_items, self.n_items),
            )
        return self._sparse[name]

    def __call__(self, histories: list[History], candidates: np.ndarray) -> np.ndarray:
        """Standardised features ``(B, C, F)`` of each history x candidate item.

        ``candidates`` is ``(B, C)`` item indices (one row per history).
        """
        t = self.tables
        b = len(histories)
        n = self.n_items
        rows, cols, w_all, w_rec, lens = [], [], [], [], np.zeros(b)
        last = np.full(b, -1)
        now = np.full(b, float(t["t_end"]))
        for r, h in enumerate(histories):
            items = h.items
            lens[r] = len(items)
            if not len(items):
                continue
            last[r] = items[-1]
            if h.timestamps is not None and len(h.timestamps):
                now[r] = float(h.timestamps[-1])
            age = np.arange(len(items))[::-1]
            rec = np.where(age < self.recent, np.exp(-self.recent_decay * age), 0.0)
            rows.append(np.full(len(items), r))
            cols.append(items)
            w_all.append(np.full(len(items), 1.0 / len(items)))
            w_rec.append(rec / rec.sum())
        if rows:
            rr, cc = np.concatenate(rows), np.concatenate(cols)
            h_all = sp.csr_matrix((np.concatenate(w_all), (rr, cc)), shape=(b, n))
            h_rec = sp.csr_matrix((np.concatenate(w_rec), (rr, cc)), shape=(b, n))
        else:
            h_all = h_rec = sp.csr_matrix((b, n), dtype=np.float64)
        cooc, trans = self.matrix("cooc"), self.matrix("trans")
        has_last = last >= 0
        last_rows = sp.csr_matrix(
            (np.ones(has_last.sum()), (np.flatnonzero(has_last), last[has_last])),
            shape=(b, n),
        )

        def gather(m: Any) -> np.ndarray:
            dense = m.toarray() if sp.issparse(m) else np.asarray(m)
            return np.take_along_axis(dense, candidates, axis=1)  # (B, C)

        genre_profile = h_all @ t["genres"]  # (B, g)
        mean_year = np.asarray(h_all @ t["year"]).ravel()  # (B,)
        mean_year = np.where(lens > 0, mean_year, t["year"].mean())
        user_emb = h_rec @ t["emb"]  # (B, E)
        cand_emb = t["emb"][candidates]  # (B, C, E)
        cand_year = t["year"][candidates]  # (B, C)
        cols_out = [
            t["log_pop"][candidates],
            t["recent_log_pop"][candidates],
            cand_year,
            np.broadcast_to(np.log1p(lens)[:, None], candidates.shape),
            np.einsum("bg,bcg->bc", genre_profile, t["genres"][candidates]),
            np.abs(cand_year - mean_year[:, None]),
            np.log1p(np.maximum(now[:, None] - t["last_seen"][candidates], 0) / DAY),
            np.log1p(np.maximum(now[:, None] - t["first_seen"][candidates], 0) / DAY),
            gather(last_rows @ cooc),
            gather(h_rec @ cooc),
            gather(h_all @ cooc),
            np.einsum("be,bce->bc", user_emb, cand_emb),
            gather(last_rows @ trans),
        ]
        x = np.stack([np.asarray(c, dtype=np.float32) for c in cols_out], axis=-1)
        x = np.asarray((x - t["feat_mean"]) / t["feat_std"])
        return np.clip(x, -5.0, 5.0).astype(np.float32)  # (B, C, F)

    def onnx_feeds(
        self, histories: list[History], candidates: np.ndarray | None
    ) -> OnnxFeeds:
        """The graph's input: features of each history x candidate (the whole
        catalog if ``candidates`` is ``None``; else ``(B, C)`` item indices)."""
        if candidates is None:
            candidates = np.broadcast_to(
                np.arange(self.n_items), (len(histories), self.n_items)
            )
        feats = self(histories, np.asarray(candidates, dtype=np.int64))
        return OnnxFeeds({"features": feats}, per_candidate=True)
