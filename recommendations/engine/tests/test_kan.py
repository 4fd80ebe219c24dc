"""KAN ranker: B-spline basis, grid update/refinement, online updates, quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recommendations.engine.data import History, Split, leave_one_out
from recommendations.engine.data.synthetic import generate
from recommendations.engine.evaluation import evaluate
from recommendations.engine.models import create_model
from recommendations.engine.models.kan import (
    FEATURES,
    KAN,
    KANLayer,
    b_spline_basis,
    uniform_grid,
)
from recommendations.engine.training import Trainer


@pytest.mark.parametrize("order", [1, 2, 3])
def test_b_spline_basis_is_a_partition_of_unity(order: int) -> None:
    grid = uniform_grid(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 4.0]), 5, order)
    x = torch.stack([torch.linspace(-1, 0.999, 101), torch.linspace(0, 3.999, 101)], 1)
    basis = b_spline_basis(x, grid, order)  # (101, 2, G + k)
    assert basis.shape == (101, 2, 5 + order)
    np.testing.assert_allclose(basis.sum(-1), 1.0, atol=1e-5)
    assert (basis >= -1e-7).all()


def test_linear_b_splines_are_hat_functions() -> None:
    grid = uniform_grid(torch.tensor([0.0]), torch.tensor([2.0]), 2, 1)
    np.testing.assert_allclose(grid[0], [-1, 0, 1, 2, 3])
    # hats centred on 0, 1, 2
    basis = b_spline_basis(torch.tensor([[0.5], [1.75]]), grid, 1)[:, 0]
    np.testing.assert_allclose(basis, [[0.5, 0.5, 0.0], [0.0, 0.25, 0.75]], atol=1e-6)


def test_grid_update_and_refinement_keep_the_function() -> None:
    torch.manual_seed(0)
    layer = KANLayer(3, 2, grid_size=5, order=3, grid_eps=0.02)
    x = torch.rand(500, 3) * 1.6 - 0.8  # inside the initial [-1, 1] grid
    before = layer(x)
    layer.update_grid(x)  # fit the grid to the data range [-0.8, 0.8]
    assert float(layer.grid[0, 3]) > -0.85 and float(layer.grid[0, -4]) < 0.85
    np.testing.assert_allclose(layer(x).detach(), before.detach(), atol=0.05)
    layer.update_grid(x, grid_size=12)  # grid extension
    assert layer.grid_size == 12 and layer.spline_weight.shape == (2, 3, 15)
    np.testing.assert_allclose(layer(x).detach(), before.detach(), atol=0.05)


@pytest.fixture(scope="module")
def kan(tiny_split: Split) -> KAN:
    model = KAN(samples_per_epoch=512, negatives=16, svd_dim=8)
    model.fit(tiny_split.train, tiny_split.validation_task(), Trainer(max_epochs=2))
    return model


def test_features_are_finite_and_shaped(kan: KAN, tiny_split: Split) -> None:
    histories = tiny_split.test_task().histories[:3]
    cand = np.tile(np.arange(10), (3, 1))
    x = kan.features(histories, cand)
    assert x.shape == (3, 10, len(FEATURES)) and np.isfinite(x).all()


def test_partial_fit_moves_scores_in_the_label_direction(
    kan: KAN, tiny_split: Split
) -> None:
    history = tiny_split.test_task().histories[0]
    pos, neg = 3, 7
    tables = {k: v.copy() for k, v in kan.tables.items()}
    before = kan.score([history])[0]
    batch = [(history, pos, 1.0), (history, neg, 0.0)]
    for _ in range(3):
        kan.partial_fit(batch)
    after = kan.score([history])[0]
    assert after[pos] > before[pos] and after[neg] < before[neg]
    for k, v in tables.items():  # only the KAN weights changed
        np.testing.assert_array_equal(kan.tables[k], v)


def test_feature_importance_and_plot(kan: KAN, tmp_path: Path) -> None:
    importance = kan.feature_importance(sample=200)
    assert set(importance) == set(FEATURES)
    assert all(v >= 0 for v in importance.values()) and max(importance.values()) > 0
    out = kan.plot_edge_functions(tmp_path / "kan.png", top=3)
    pytest.importorskip("matplotlib")
    assert out is not None and out.stat().st_size > 1000


def test_the_most_recent_event_changes_the_scores(kan: KAN) -> None:
    a = kan.score([History(np.array([1, 2, 3]))])[0]
    b = kan.score([History(np.array([1, 2, 3, 4]))])[0]
    assert not np.allclose(a, b)


@pytest.mark.slow
def test_kan_beats_popularity_on_planted_chains() -> None:
    syn = generate(
        users=150, items=80, interactions=2400, clusters=4, chain_probability=0.9,
        chain_length=8, seed=11,
    )  # fmt: skip
    split = leave_one_out(syn.interactions())
    task = split.test_task()
    pop = create_model("pop")
    pop.fit(split.train)
    model = create_model("kan", samples_per_epoch=2048, svd_dim=8)
    model.fit(split.train, split.validation_task(), Trainer(max_epochs=6, patience=3))
    ours = evaluate(model, task).mean("ndcg@10")
    base = evaluate(pop, task).mean("ndcg@10")
    assert ours > 3 * base, (ours, base)


def test_candidate_scores_equal_the_catalog_scores_at_those_items(kan: KAN) -> None:
    histories = [History(np.array([0, 3, 5])), History(np.array([2]))]
    full = kan.score(histories)
    shared = np.array([1, 7, 4])
    np.testing.assert_allclose(kan.score(histories, shared), full[:, shared],
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    per_user = np.array([[1, 7], [9, 0]])
    np.testing.assert_allclose(
        kan.score(histories, per_user), np.take_along_axis(full, per_user, axis=1),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip
