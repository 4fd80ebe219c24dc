"""Hyperbolic model: Poincaré distance properties, points inside the ball, quality."""

from __future__ import annotations

import geoopt
import numpy as np
import pytest
import torch

from recommendations.engine.data import Split, leave_one_out
from recommendations.engine.data.synthetic import generate
from recommendations.engine.evaluation import evaluate
from recommendations.engine.models import create_model
from recommendations.engine.models.hyperbolic import Hyperbolic, poincare_distance
from recommendations.engine.training import Trainer


def _points(n: int, c: float, seed: int = 0) -> torch.Tensor:
    ball = geoopt.PoincareBall(c=c)
    gen = torch.Generator().manual_seed(seed)
    return ball.expmap0(0.5 * torch.randn(n, 5, generator=gen, dtype=torch.float64))


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
def test_distance_is_a_metric_and_matches_geoopt(c: float) -> None:
    x = _points(40, c)
    d = poincare_distance(x, x, c)  # (40, 40)
    np.testing.assert_allclose(d, d.T, atol=1e-6)
    np.testing.assert_allclose(torch.diagonal(d), 0.0, atol=2e-3)
    assert (d[~torch.eye(40, dtype=torch.bool)] > 0).all()
    ref = geoopt.PoincareBall(c=c).dist(x[:, None, :], x[None, :, :])
    off = ~torch.eye(40, dtype=torch.bool)
    np.testing.assert_allclose(d[off], ref[off], rtol=1e-3)
    # triangle inequality on every triple
    assert (d[:, :, None] <= d[:, None, :] + d.T[None, :, :] + 1e-6).all()


def test_distance_from_origin_has_the_closed_form() -> None:
    x = torch.tensor([[0.5, 0.0]], dtype=torch.float64)
    d = poincare_distance(torch.zeros(1, 2, dtype=torch.float64), x, 1.0)
    assert float(d) == pytest.approx(2 * np.arctanh(0.5), rel=1e-6)


def test_points_stay_inside_the_ball_after_training(tiny_split: Split) -> None:
    model = Hyperbolic(dim=8, curvature=2.0, lr=0.05, batch_size=256)
    model.fit(tiny_split.train, tiny_split.validation_task(), Trainer(max_epochs=4))
    norms = np.linalg.norm(model.item_embeddings(), axis=1)
    assert (norms < 1 / np.sqrt(2.0)).all() and norms.max() > 0.1
    users = model.net.users(torch.from_numpy(model.history_weights(
        tiny_split.test_task().histories[:10])))  # fmt: skip
    assert (users.norm(dim=-1) < 1 / np.sqrt(2.0)).all()


def test_a_new_event_moves_the_user_towards_the_item(tiny_split: Split) -> None:
    model = Hyperbolic(dim=8, batch_size=256)
    model.fit(tiny_split.train, None, Trainer(max_epochs=2))
    history = list(tiny_split.test_task().histories[0].items)
    item = next(i for i in range(model.n_items) if i not in history)
    before = model.score([history])[0, item]
    after = model.score([[*history, item]])[0, item]
    assert after > before


@pytest.mark.slow
def test_hyperbolic_beats_popularity_on_planted_taste_clusters() -> None:
    syn = generate(
        users=200, items=150, interactions=3000, clusters=5, chain_probability=0.0,
        drift=0.0, in_cluster=0.95, popularity_exponent=0.5, seed=5,
    )  # fmt: skip
    split = leave_one_out(syn.interactions())
    task = split.test_task()
    pop = create_model("pop")
    pop.fit(split.train)
    model = create_model("hyperbolic", dim=16, batch_size=256, lr=0.02)
    model.fit(split.train, split.validation_task(), Trainer(max_epochs=20, patience=4))
    ours = evaluate(model, task).mean("ndcg@10")
    base = evaluate(pop, task).mean("ndcg@10")
    assert ours > 3 * base, (ours, base)
