"""The trainer's loop: early stopping, best-state restore, checkpoints, budget."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from recommendations.engine.data import History, Interactions, Split
from recommendations.engine.models.base import IterativeRecommender, ModelConfig
from recommendations.engine.training import Trainer


class ScriptedConfig(ModelConfig):
    """No hyperparameters."""


class Scripted(IterativeRecommender):
    """Epoch ``e`` scores the validation targets well only in ``good_epochs``."""

    name: ClassVar[str] = "scripted"
    Config = ScriptedConfig
    good_epochs: ClassVar[set[int]] = {3}

    def setup(self, train: Interactions, seed: int) -> None:
        self.epoch = 0
        self.targets: dict[int, int] = {}

    def train_epoch(self, epoch: int) -> float:
        self.epoch = epoch
        return 1.0 / epoch

    def _score(self, histories: list[History]) -> np.ndarray:
        rng = np.random.default_rng(self.epoch)
        scores = rng.random((len(histories), self.n_items)).astype(np.float32)
        if self.epoch in self.good_epochs:
            for r, h in enumerate(histories):
                scores[r, self.targets.get(h.user, 0)] = 10.0
        return scores

    def get_state(self) -> dict[str, np.ndarray]:
        return {"epoch": np.array(self.epoch)}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.epoch = int(state["epoch"])


def scripted(split: Split) -> tuple[Scripted, object]:
    model = Scripted()
    valid = split.validation_task()
    original_setup = model.setup

    def setup(train: Interactions, seed: int) -> None:
        original_setup(train, seed)
        model.targets = {
            int(u): int(t.indices[0])
            for u, t in zip(valid.users, valid.targets, strict=True)
        }

    model.setup = setup  # type: ignore[method-assign]
    return model, valid


def test_it_stops_early_and_restores_the_best_epoch(
    tiny_split: Split, tmp_path: Path
) -> None:
    model, valid = scripted(tiny_split)
    trainer = Trainer(max_epochs=50, patience=2, checkpoint_dir=tmp_path)
    report = model.fit(tiny_split.train, valid, trainer)
    assert report.best_epoch == 3 and report.stopped == "early stopping"
    assert report.epochs == 5  # two evaluations without improvement after epoch 3
    assert model.epoch == 3  # best state restored
    assert report.best_valid_ndcg == pytest.approx(1.0)
    assert (tmp_path / "best" / "model.json").is_file()


def test_it_respects_the_time_budget(tiny_split: Split) -> None:
    model, valid = scripted(tiny_split)
    report = model.fit(
        tiny_split.train,
        valid,
        Trainer(max_epochs=10**6, patience=10**6, time_budget_s=0.2),
    )
    assert report.stopped == "time budget"
    assert report.train_seconds < 30
