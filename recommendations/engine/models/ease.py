"""EASE: Embarrassingly Shallow Autoencoder.

Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019.

Closed form: ``P = (X^T X + l2 I)^-1``, ``B = I - P diag(1 / diag(P))`` (zero
diagonal); a history row ``x`` scores ``x B``. With ``l2=None`` the strength
is chosen from ``l2_grid`` by validation NDCG@10, reusing one
eigendecomposition of the Gram matrix for every candidate.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
from pydantic import Field, field_validator

from recommendations.engine.data.interactions import History, Interactions
from recommendations.engine.data.splits import EvalTask
from recommendations.engine.evaluation.evaluator import validation_ndcg
from recommendations.engine.models.base import ModelConfig, Recommender
from recommendations.engine.models.itemknn import histories_matrix

logger = logging.getLogger(__name__)


class EASEConfig(ModelConfig):
    l2: float | None = Field(None, gt=0)
    """L2 strength lambda; ``None`` selects it from ``l2_grid`` on validation."""
    l2_grid: tuple[float, ...] = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)
    """Candidate lambdas tried when ``l2`` is ``None``."""

    @field_validator("l2_grid")
    @classmethod
    def _positive(cls, grid: tuple[float, ...]) -> tuple[float, ...]:
        if not grid or min(grid) <= 0:
            raise ValueError("l2_grid must be non-empty and positive")
        return grid


class EASE(Recommender):
    name: ClassVar[str] = "ease"
    Config = EASEConfig

    def __init__(self, config: ModelConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        self.weights: np.ndarray | None = None  # (N, N), zero diagonal
        self.fit_info: dict[str, object] = {}

    @staticmethod
    def _closed_form(vecs: np.ndarray, eig: np.ndarray, l2: float) -> np.ndarray:
        p = (vecs / (eig + l2)) @ vecs.T  # (N, N) = (G + l2 I)^-1
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        return b.astype(np.float32)

    def fit_closed_form(self, train: Interactions, valid: EvalTask | None) -> None:
        x = train.matrix()
        gram = (x.T @ x).toarray().astype(np.float64)  # (N, N)
        eig, vecs = np.linalg.eigh(gram)
        eig = np.clip(eig, 0.0, None)
        if self.config.l2 is not None or valid is None or not len(valid):
            l2 = self.config.l2 or 500.0
            self.weights = self._closed_form(vecs, eig, l2)
            self.fit_info = {"l2": l2}
            return
        results = {}
        for l2 in self.config.l2_grid:
            self.weights = self._closed_form(vecs, eig, l2)
            results[l2] = validation_ndcg(self, valid)
            logger.info("ease l2 %.0f valid ndcg@10 %.4f", l2, results[l2])
        best = max(results, key=results.__getitem__)
        self.weights = self._closed_form(vecs, eig, best)
        self.fit_info = {"l2": best, "l2_grid_valid_ndcg@10": results}

    def _score(self, histories: list[History]) -> np.ndarray:
        h = histories_matrix(histories, self.n_items)  # (B, N)
        return np.asarray(h @ self.weights, dtype=np.float32)

    def get_state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.weights = state["weights"].astype(np.float32)
