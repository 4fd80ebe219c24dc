"""Item-based k-nearest-neighbours with shrunk cosine similarity.

Sarwar, Karypis, Konstan & Riedl, "Item-based collaborative filtering
recommendation algorithms", WWW 2001; shrinkage as in Koren, KDD 2008.

``sim(i, j) = (x_i . x_j) / (||x_i|| ||x_j|| + shrink)`` over the binary
user-item matrix; each item keeps its ``neighbors`` most similar items; a
user's score for ``j`` is the sum of ``sim(i, j)`` over history items ``i``.
Order-free (issue 19: same-second order matters only through the split).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from recommendations.engine.data.interactions import History, Interactions
from recommendations.engine.data.splits import EvalTask
from recommendations.engine.evaluation.evaluator import select_on_validation
from recommendations.engine.models.base import ModelConfig, Recommender


class ItemKNNConfig(ModelConfig):
    neighbors: int = Field(100, ge=1)
    """Similar items kept per item (the rest are set to zero)."""
    shrink: float = Field(10.0, ge=0.0)
    """Added to the cosine denominator; damps similarities from few co-users."""
    tune: bool = False
    """Pick ``neighbors`` x ``shrink`` from the grids below by validation NDCG@10."""
    neighbors_grid: tuple[int, ...] = (20, 50, 100, 200, 400)
    """Candidate ``neighbors`` when ``tune`` is set."""
    shrink_grid: tuple[float, ...] = (0.0, 10.0, 50.0, 200.0)
    """Candidate ``shrink`` when ``tune`` is set."""

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"tune": True},
        "full": {"tune": True},
    }


def histories_matrix(histories: list[History], n_items: int) -> sp.csr_matrix:
    """Binary ``(B, N)`` matrix of the history items."""
    lengths = [len(h.items) for h in histories]
    cols = np.concatenate([h.items for h in histories]) if histories else np.zeros(0)
    rows = np.repeat(np.arange(len(histories)), lengths)
    m = sp.csr_matrix(
        (np.ones(len(cols), np.float32), (rows, cols.astype(np.int64))),
        shape=(len(histories), n_items),
    )
    m.data[:] = 1.0
    return m


class ItemKNN(Recommender):
    name: ClassVar[str] = "itemknn"
    Config = ItemKNNConfig

    config: ItemKNNConfig

    def __init__(self, config: ModelConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        self.similarity: sp.csr_matrix | None = None  # (N, N) sparse
        self.fit_info: dict[str, Any] = {}

    def fit_closed_form(self, train: Interactions, valid: EvalTask | None) -> None:
        x = train.matrix()  # (U, N)
        co = (x.T @ x).toarray().astype(np.float32)  # (N, N)
        cfg = self.config
        if not cfg.tune or valid is None or not len(valid):
            self.similarity = self._similarity(co, cfg.neighbors, cfg.shrink)
            return

        def install(setting: tuple[int, float]) -> None:
            self.similarity = self._similarity(co, *setting)

        grid = [(k, shrink) for k in cfg.neighbors_grid for shrink in cfg.shrink_grid]
        best, results = select_on_validation(self, valid, grid, install)
        self.fit_info = {
            "neighbors": best[0],
            "shrink": best[1],
            "grid_valid_ndcg@10": {f"{k}/{sh:g}": v for (k, sh), v in results.items()},
        }

    @staticmethod
    def _similarity(co: np.ndarray, neighbors: int, shrink: float) -> sp.csr_matrix:
        norms = np.sqrt(np.diag(co)).astype(np.float32)
        sim = co / (norms[:, None] * norms[None, :] + shrink + 1e-12)
        np.fill_diagonal(sim, 0.0)
        k = min(neighbors, sim.shape[0] - 1)
        if k > 0 and k < sim.shape[0] - 1:
            drop = np.argpartition(-sim, k, axis=1)[:, k:]  # keep the k largest per row
            np.put_along_axis(sim, drop, 0.0, axis=1)
        return sp.csr_matrix(sim)

    def _score(self, histories: list[History]) -> np.ndarray:
        h = histories_matrix(histories, self.n_items)  # (B, N)
        return np.asarray((h @ self.similarity).todense(), dtype=np.float32)

    def get_state(self) -> dict[str, np.ndarray]:
        s = self._fitted(self.similarity)
        return {"data": s.data, "indices": s.indices, "indptr": s.indptr}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        n = len(state["indptr"]) - 1
        self.similarity = sp.csr_matrix(
            (state["data"], state["indices"], state["indptr"]), shape=(n, n)
        )
