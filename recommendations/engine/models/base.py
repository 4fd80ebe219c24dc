"""The contract every recommender implements.

A model is fitted on training :class:`Interactions` (with an optional
validation :class:`EvalTask` for early stopping / hyperparameter selection)
and then scores items for *histories*: the user's current items, oldest
first. Scoring never looks up stored per-user state by itself, so a new event
changes the output without retraining; a model that has user parameters
(LightGCN) uses them only when ``History.user`` names a training user and
folds the user in from the items otherwise.

Iterative models (:class:`IterativeRecommender`) supply one epoch at a time;
the :class:`~recommendations.engine.training.trainer.Trainer` owns the loop.
"""

from __future__ import annotations

import abc
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from recommendations.engine.data.interactions import (
    History,
    Interactions,
    Vocabulary,
    as_histories,
)
from recommendations.engine.data.splits import EvalTask
from recommendations.engine.errors import ConfigError, NotFittedError, UnknownItemError
from recommendations.engine.jsonable import to_jsonable
from recommendations.engine.models.names import import_model_class
from recommendations.engine.training.trainer import FitReport, Trainer

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1

T = TypeVar("T")


class ModelConfig(BaseModel):
    """Base of every model config: immutable, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {}
    """Per training profile (``quick``/``full``), overrides of the defaults."""
    TRAINER_PROFILES: ClassVar[dict[str, dict[str, Any]]] = {}
    """Per profile, overrides of the trainer settings (epochs, patience...)."""

    @classmethod
    def for_profile(cls, profile: str, **overrides: Any) -> ModelConfig:
        if profile not in ("quick", "full"):
            raise ConfigError(f"unknown profile {profile!r}; use 'quick' or 'full'")
        return cls(**{**cls.PROFILES.get(profile, {}), **overrides})


class Recommender(abc.ABC):
    """Shared model protocol (see module docstring)."""

    name: ClassVar[str]
    Config: ClassVar[type[ModelConfig]]
    iterative: ClassVar[bool] = False
    config: ModelConfig
    """Validated settings; a model narrows the type to its own ``Config``."""

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        if config is None:
            config = self.Config(**overrides)
        elif overrides:
            config = self.Config(**{**config.model_dump(), **overrides})
        if not isinstance(config, self.Config):
            raise ConfigError(f"{self.name} needs a {self.Config.__name__}")
        self.config = config
        self.items: Vocabulary | None = None
        self.n_users = 0
        self.device = "cpu"
        self.last_fit: FitReport | None = None
        """The trainer's report of the last :meth:`fit`."""

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        train: Interactions,
        valid: EvalTask | None = None,
        trainer: Trainer | None = None,
    ) -> FitReport:
        """Fit on ``train``; ``valid`` drives early stopping / selection."""
        return (trainer or Trainer()).fit(self, train, valid)

    def _fitted(self, value: T | None) -> T:
        """``value`` (something :meth:`fit` or :meth:`set_state` sets);
        :class:`NotFittedError` while it is still ``None``."""
        if value is None:
            raise NotFittedError(f"{self.name} is not fitted")
        return value

    def prepare(self, train: Interactions) -> None:
        """Called by the trainer before fitting: remember the vocabularies."""
        self.items = train.items
        self.n_users = train.n_users

    def fit_closed_form(self, train: Interactions, valid: EvalTask | None) -> None:
        """Non-iterative models fit here (the trainer calls it once)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- score
    @property
    def n_items(self) -> int:
        if self.items is None:
            raise NotFittedError(f"{self.name} is not fitted")
        return len(self.items)

    def score(
        self,
        histories: Sequence[History | Sequence[int] | np.ndarray],
        candidates: np.ndarray | Sequence[int] | None = None,
    ) -> np.ndarray:
        """Scores given each user's current history (dense item indices).

        Args:
            histories: ``B`` histories, oldest item first.
            candidates: ``None`` to score the whole catalog, ``(C,)`` item
                indices shared by every user, or ``(B, C)`` per user.

        Returns:
            ``(B, n_items)`` or ``(B, C)`` float32; higher is better.
        """
        hs = as_histories(histories)
        n = self.n_items
        for h in hs:
            self._check_items(h.items, n)
        if not hs:
            width = n if candidates is None else np.asarray(candidates).shape[-1]
            return np.zeros((0, width), dtype=np.float32)
        if candidates is None:
            return np.asarray(self._score(hs), dtype=np.float32)  # (B, N)
        cand = np.asarray(candidates, dtype=np.int64)
        self._check_items(cand.ravel(), n)
        if cand.ndim == 1:
            cand = np.broadcast_to(cand, (len(hs), len(cand)))
        return np.asarray(self._score_candidates(hs, cand), dtype=np.float32)

    def _score_candidates(
        self, histories: list[History], cand: np.ndarray
    ) -> np.ndarray:
        """Scores ``(B, C)`` of the item indices ``cand`` ``(B, C)``. Default:
        the whole catalog, then the candidates; a ranker that featurises
        each (user, item) pair overrides it to score the candidates only."""
        return np.take_along_axis(self._score(histories), cand, axis=1)

    def score_ids(
        self, history_ids: Sequence[Any], candidate_ids: Sequence[Any] | None = None
    ) -> np.ndarray:
        """Score one history of external item ids; returns ``(N,)`` or ``(C,)``."""
        items = self._fitted(self.items)
        history: Sequence[int] | np.ndarray = (
            items.index(list(history_ids)) if len(history_ids) else []
        )
        cand = None if candidate_ids is None else items.index(list(candidate_ids))
        scores: np.ndarray = self.score([History(np.asarray(history))], cand)[0]
        return scores

    def recommend(
        self,
        history: History | Sequence[int],
        k: int = 10,
        *,
        exclude_seen: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` dense item indices and their scores for one history."""
        h = as_histories([history])[0]
        scores = self.score([h])[0].astype(np.float64)
        if exclude_seen and len(h.items):
            scores[h.items] = -np.inf
        k = min(k, len(scores))
        top = np.argsort(-scores, kind="stable")[:k]
        return top, scores[top]

    @staticmethod
    def _check_items(items: np.ndarray, n: int) -> None:
        if items.size and (items.min() < 0 or items.max() >= n):
            bad = items[(items < 0) | (items >= n)][0]
            raise UnknownItemError(int(bad), n)

    @abc.abstractmethod
    def _score(self, histories: list[History]) -> np.ndarray:
        """``(B, n_items)`` scores for validated histories."""

    def item_embeddings(self) -> np.ndarray | None:
        """``(n_items, D)`` item vectors where the model has them, else ``None``."""
        return None

    def export_onnx(self, path: str | Path) -> Path:
        """Write the model's neural scoring graph to ``path`` (ONNX) and return it.

        Neural models implement it together with ``onnx_feeds(histories,
        candidates)``, the numpy pre-processing that builds the graph's inputs;
        ``recommendations.engine.onnx.OnnxScorer`` runs the pair with ONNX
        Runtime. Numpy models (pop, itemknn, ease) have no graph.
        """
        raise NotImplementedError(f"{self.name}: ONNX export is not implemented yet")

    # ------------------------------------------------------------ persist
    @abc.abstractmethod
    def get_state(self) -> dict[str, np.ndarray]:
        """Fitted parameters as numpy arrays (what :meth:`save` writes)."""

    @abc.abstractmethod
    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore parameters produced by :meth:`get_state`."""

    def save(self, path: str | Path) -> Path:
        """Write ``model.json`` + ``state.npz`` into the folder ``path``."""
        if self.items is None:
            raise NotFittedError(f"{self.name} is not fitted")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "model": self.name,
            "config": self.config.model_dump(mode="json"),
            "item_ids": to_jsonable(self.items.ids),
            "n_users": self.n_users,
        }
        (folder / "model.json").write_text(json.dumps(meta))
        # numeric arrays only: load() reads them with allow_pickle=False
        np.savez(folder / "state.npz", allow_pickle=False, **self.get_state())
        return folder

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Load any registered model saved with :meth:`save`
        (``Recommender.load``), or one of this class (``SASRec.load``)."""
        folder = Path(path)
        meta = json.loads((folder / "model.json").read_text())
        model_cls = import_model_class(meta["model"])
        if not issubclass(model_cls, cls):
            raise ConfigError(f"{folder} holds a {meta['model']} model")
        model = model_cls(model_cls.Config(**meta["config"]))
        model.items = Vocabulary(np.asarray(meta["item_ids"]))
        model.n_users = int(meta["n_users"])
        with np.load(folder / "state.npz", allow_pickle=False) as npz:
            model.set_state({k: npz[k] for k in npz.files})
        model.load_extra(folder)
        return model

    def load_extra(self, folder: Path) -> None:  # noqa: B027 - optional hook
        """Hook: read what :meth:`save` wrote besides ``state.npz`` (members...)."""


class IterativeRecommender(Recommender):
    """A model trained epoch by epoch under the trainer's control."""

    iterative: ClassVar[bool] = True

    @abc.abstractmethod
    def setup(self, train: Interactions, seed: int) -> None:
        """Build parameters/optimiser for ``train``; ``seed`` drives all randomness."""

    @abc.abstractmethod
    def train_epoch(self, epoch: int) -> float:
        """Run one epoch; return the mean training loss."""

    def finish(self, valid: EvalTask | None) -> None:  # noqa: B027 - optional hook
        """Called once after the best state is restored (post-hoc selection)."""
