"""EASE: Embarrassingly Shallow Autoencoder.

Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019.

Closed form: ``P = (X^T X + l2 I)^-1``, ``B = I - P diag(1 / diag(P))`` (zero
diagonal); a history row ``x`` scores ``x B``. With ``l2=None`` the strength
is chosen from ``l2_grid`` by validation NDCG@10, reusing one
eigendecomposition of the Gram matrix for every candidate.

Order-free: the order of same-second events (issue 19) matters only through
which event the split holds out.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from pydantic import Field, field_validator

from recommendations.engine.data.interactions import History, Interactions
from recommendations.engine.data.splits import EvalTask
from recommendations.engine.evaluation.metrics import metrics_from_ranks, target_ranks
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


def ndcg_of_scores(scores: np.ndarray, task: EvalTask, k: int = 10) -> float:
    """Mean NDCG@k of a precomputed ``(U, N)`` score matrix on ``task``."""
    rows, ranks, _ = target_ranks(scores, task.targets, task.exclude)
    return float(
        np.nanmean(metrics_from_ranks(rows, ranks, len(task), (k,))[f"ndcg@{k}"])
    )


class EASE(Recommender):
    name: ClassVar[str] = "ease"
    Config = EASEConfig

    config: EASEConfig

    def __init__(self, config: ModelConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        self.weights: np.ndarray | None = None  # (N, N), zero diagonal
        self.fit_info: dict[str, object] = {}

    @staticmethod
    def _closed_form(vecs: np.ndarray, eig: np.ndarray, l2: float) -> np.ndarray:
        p = (vecs / (eig + l2)) @ vecs.T  # (N, N) = (G + l2 I)^-1
        b: np.ndarray = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        return b.astype(np.float32)

    @staticmethod
    def _validation_scores(
        x_hist: sp.csr_matrix, vecs: np.ndarray, eig: np.ndarray, l2: float
    ) -> np.ndarray:
        """``x B`` for the validation histories without forming ``B``.

        ``B = I - P diag(1/diag P)``, so ``x B = x - (x P) / diag P``: costs
        ``U N^2`` per lambda instead of ``N^3``.
        """
        inv = 1.0 / (eig + l2)  # (N,)
        diag_p = (vecs**2) @ inv  # (N,)
        xv = np.asarray(x_hist @ vecs)  # (U, N)
        xp = (xv * inv) @ vecs.T  # (U, N)
        scores: np.ndarray = np.asarray(x_hist.todense()) - xp / diag_p
        return scores

    def fit_closed_form(self, train: Interactions, valid: EvalTask | None) -> None:
        x = train.matrix()
        n = x.shape[1]
        # float64 keeps ML-100K-sized models exact; large catalogs use float32
        dtype = np.float64 if n <= 4000 else np.float32
        gram = (x.T @ x).toarray().astype(dtype)  # (N, N)
        eig, vecs = scipy.linalg.eigh(gram, driver="evd", overwrite_a=True)
        eig = np.clip(eig, 0.0, None)
        if self.config.l2 is not None or valid is None or not len(valid):
            l2 = self.config.l2 or 500.0
            self.weights = self._closed_form(vecs, eig, l2)
            self.fit_info = {"l2": l2}
            return
        x_valid = histories_matrix(valid.histories, n).astype(dtype)
        results = {}
        for l2 in self.config.l2_grid:
            scores = self._validation_scores(x_valid, vecs, eig, l2)
            results[l2] = ndcg_of_scores(scores, valid)
            logger.info("ease l2 %.0f valid ndcg@10 %.4f", l2, results[l2])
        best = max(results, key=results.__getitem__)
        self.weights = self._closed_form(vecs, eig, best)
        self.fit_info = {"l2": best, "l2_grid_valid_ndcg@10": results}

    def _score(self, histories: list[History]) -> np.ndarray:
        h = histories_matrix(histories, self.n_items)  # (B, N)
        return np.asarray(h @ self.weights, dtype=np.float32)

    def get_state(self) -> dict[str, np.ndarray]:
        return {"weights": self._fitted(self.weights)}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.weights = state["weights"].astype(np.float32)
