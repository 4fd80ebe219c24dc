"""Most-popular baseline: every user gets the items with the most training events.

The floor every model must beat (DESIGN.md §4). Scores ignore the history;
ties between equally popular items are broken by a tiny, fixed jitter-free
index term so rankings are deterministic.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from recommendations.engine.data.interactions import History, Interactions
from recommendations.engine.data.splits import EvalTask
from recommendations.engine.models.base import ModelConfig, Recommender


class PopularityConfig(ModelConfig):
    """Popularity has no hyperparameters."""


class Popularity(Recommender):
    name: ClassVar[str] = "pop"
    Config = PopularityConfig

    config: PopularityConfig

    def __init__(self, config: ModelConfig | None = None, **overrides: object) -> None:
        super().__init__(config, **overrides)
        self.counts: np.ndarray | None = None  # (N,)

    def fit_closed_form(self, train: Interactions, valid: EvalTask | None) -> None:
        self.counts = train.item_counts().astype(np.float32)

    def _score(self, histories: list[History]) -> np.ndarray:
        scores = np.log1p(self._fitted(self.counts))  # (N,)
        return np.broadcast_to(scores, (len(histories), len(scores))).copy()

    def get_state(self) -> dict[str, np.ndarray]:
        return {"counts": self._fitted(self.counts)}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.counts = state["counts"].astype(np.float32)
