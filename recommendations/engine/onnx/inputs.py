"""What a graph is fed: :class:`OnnxFeeds` and the :class:`FeedBuilder` protocol.

The bottom of the ONNX layer (numpy only): the models' torch-free input
builders (:mod:`.feeds`, ``models/kan_features.py``) and the scorer all
depend on it, and it depends on nothing but the histories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from recommendations.engine.data.interactions import History

__all__ = ["FeedBuilder", "OnnxFeeds"]


@dataclass(frozen=True)
class OnnxFeeds:
    """Inputs of a model's graph for one batch of histories.

    ``per_candidate``: the graph scored exactly the candidates it was given
    (output ``(B, C)``); otherwise it scored the whole catalog ``(B, N)`` and
    the scorer selects the candidates, as ``Recommender.score`` does.
    """

    inputs: dict[str, np.ndarray]
    per_candidate: bool = False


class FeedBuilder(Protocol):
    """Builds a graph's inputs for validated histories (dense item indices) and
    the candidates: ``None`` (the whole catalog) or ``(B, C)`` item indices."""

    def __call__(
        self, histories: list[History], candidates: npt.NDArray[np.int64] | None, /
    ) -> OnnxFeeds: ...
