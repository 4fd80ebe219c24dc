"""Shared contract of every registered model.

Parametrised over the registry: a model added in one line of
``models/registry.py`` gets these tests for free. ``TINY`` holds small
hyperparameters that keep each model fast here (models not listed use
their defaults).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest

from recommendations.engine.data import History, Split
from recommendations.engine.errors import NotFittedError, UnknownItemError
from recommendations.engine.models import Recommender, get_model_class, model_names
from recommendations.engine.training import Trainer

TINY: dict[str, dict[str, Any]] = {
    "sasrec": {"hidden": 16, "max_len": 20, "blocks": 1, "batch_size": 64},
    "lightgcn": {"dim": 16, "layers": 2, "batch_size": 512},
    "ensemble": {"members": ("pop", "itemknn", "ease"), "samples": 20},
}
BAD: dict[str, dict[str, Any]] = {
    "itemknn": {"neighbors": 0},
    "ease": {"l2": -1.0},
    "sasrec": {"dropout": 1.5},
    "lightgcn": {"layers": -1},
    "kan": {"grid_size": 0},
    "neural_ode": {"phase": True, "dim": 15},
    "quantum_fluid": {"dim": 15},
    "hyperbolic": {"curvature": 0},
    "diffusion": {"steps": 5, "sampling_steps": 9},
    "ensemble": {"members": ("pop", "no_such_model")},
}


def fitted(name: str, split: Split, seed: int = 0) -> Recommender:
    model = get_model_class(name)(**TINY.get(name, {}))
    model.fit(split.train, split.validation_task(), Trainer(max_epochs=2, seed=seed))
    return model


@pytest.fixture(scope="module", params=model_names())
def model_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def model(model_name: str, tiny_split: Split) -> Recommender:
    return fitted(model_name, tiny_split)


def test_config_rejects_bad_values_and_unknown_keys(model_name: str) -> None:
    cls = get_model_class(model_name)
    with pytest.raises(pydantic.ValidationError):
        cls.Config(no_such_option=1)
    if model_name in BAD:
        with pytest.raises(pydantic.ValidationError):
            cls(**BAD[model_name])
    assert cls.Config.for_profile("quick") is not None


def test_scores_have_the_catalog_shape(model: Recommender, tiny_split: Split) -> None:
    histories = tiny_split.test_task().histories[:5]
    scores = model.score(histories)
    assert scores.shape == (5, tiny_split.full.n_items)
    assert scores.dtype == np.float32 and np.isfinite(scores).all()
    subset = model.score(histories, candidates=np.array([3, 1]))
    np.testing.assert_allclose(subset, scores[:, [3, 1]], rtol=1e-5, atol=1e-6)


def test_it_is_deterministic_under_a_seed(model_name: str, tiny_split: Split) -> None:
    histories = tiny_split.test_task().histories[:8]
    a = fitted(model_name, tiny_split, seed=3).score(histories)
    b = fitted(model_name, tiny_split, seed=3).score(histories)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_save_load_round_trip(
    model: Recommender, tiny_split: Split, tmp_path: Path
) -> None:
    histories = tiny_split.test_task().histories[:6]
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config
    np.testing.assert_allclose(
        loaded.score(histories), model.score(histories), rtol=1e-5, atol=1e-6
    )


def test_unknown_user_is_folded_in_from_history(model: Recommender) -> None:
    new_user = History(np.array([0, 5, 9]))  # user=None: never seen in training
    scores = model.score([new_user])
    assert scores.shape == (1, model.n_items) and np.isfinite(scores).all()
    ext = model.score_ids(list(model.items.ids[[0, 5, 9]]))
    np.testing.assert_allclose(ext, scores[0], rtol=1e-5, atol=1e-6)


def test_empty_history_scores_without_error(model: Recommender) -> None:
    scores = model.score([History(np.array([], dtype=np.int64))])
    assert np.isfinite(scores).all()
    top, _ = model.recommend([], k=5)
    assert len(top) == 5


def test_unknown_item_gives_a_clear_error(model: Recommender) -> None:
    with pytest.raises(UnknownItemError, match="unknown item id"):
        model.score([[0, model.n_items + 7]])
    with pytest.raises(UnknownItemError):
        model.score([[0]], candidates=np.array([-1]))
    with pytest.raises(UnknownItemError, match="'no-such-movie'"):
        model.score_ids(["no-such-movie"])


def test_scoring_before_fit_fails_clearly(model_name: str) -> None:
    with pytest.raises(NotFittedError):
        get_model_class(model_name)().score([[0]])


def test_recommend_leaves_out_seen_items(model: Recommender) -> None:
    top, scores = model.recommend([1, 2, 3], k=10)
    assert not set(top.tolist()) & {1, 2, 3}
    assert (np.diff(scores) <= 0).all()


def test_sasrec_auto_loss_switches_to_sampled_softmax_on_large_catalogs(
    tiny_split,
) -> None:
    from recommendations.engine.models.sasrec import SAMPLED_ABOVE_ITEMS, SASRec
    from recommendations.engine.training import Trainer

    sampled = SASRec(loss="sampled", negatives=8, hidden=16, max_len=10)
    report = sampled.fit(tiny_split.train, tiny_split.validation_task(),
                         Trainer(max_epochs=2, seed=0))  # fmt: skip
    assert report.epochs == 2 and np.isfinite(report.history[-1].loss)

    model = SASRec()
    model.items = type("Items", (), {"__len__": lambda self: SAMPLED_ABOVE_ITEMS})()
    assert model.loss_kind == "ce"
    model.items = type("Items", (), {"__len__": lambda self: SAMPLED_ABOVE_ITEMS + 1})()
    assert model.loss_kind == "sampled"
    assert SASRec(loss="ce").loss_kind == "ce"
