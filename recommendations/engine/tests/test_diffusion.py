"""DiffRec: forward-process moments, reverse process, latent option, quality floor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recommendations.engine.data import Split, leave_one_out
from recommendations.engine.data.synthetic import generate
from recommendations.engine.evaluation import evaluate
from recommendations.engine.models import create_model
from recommendations.engine.models.diffusion import DiffRec, DiffRecConfig, Schedule
from recommendations.engine.training import Trainer


def test_forward_process_has_the_scheduled_moments() -> None:
    cfg = DiffRecConfig(steps=4, noise_scale=0.5, noise_min=0.1, noise_max=0.4)
    sched = Schedule(cfg)
    np.testing.assert_allclose(
        1 - sched.abar.numpy(), 0.5 * np.linspace(0.1, 0.4, 4), rtol=1e-5
    )
    x0 = torch.tensor([[1.0, 0.0, 1.0, 0.5]]).repeat(200_000, 1)  # (M, 4)
    t = torch.full((len(x0),), 3, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    xt = sched.q_sample(x0, t, torch.randn(x0.shape, generator=gen))
    abar = float(sched.abar[3])
    np.testing.assert_allclose(xt.mean(0), np.sqrt(abar) * x0[0], atol=0.01)
    np.testing.assert_allclose(xt.var(0), np.full(4, 1 - abar), rtol=0.02)
    # betas compose back to abar
    np.testing.assert_allclose(torch.cumprod(1 - sched.betas, 0), sched.abar, rtol=1e-6)


def test_posterior_mean_recovers_x0_when_the_prediction_is_exact() -> None:
    sched = Schedule(DiffRecConfig(steps=3, noise_scale=0.1))
    x0 = torch.rand(5, 7)
    t = torch.full((5,), 2, dtype=torch.long)
    xt = sched.q_sample(x0, t, None)  # noiseless x_t
    prev = sched.c0[2] * x0 + sched.ct[2] * xt
    np.testing.assert_allclose(prev, np.sqrt(float(sched.abar[1])) * x0, rtol=1e-5)


def test_importance_sampling_prefers_high_loss_steps(tiny_split: Split) -> None:
    model = DiffRec(steps=3, history_per_step=2, hidden=(8,))
    model.prepare(tiny_split.train)
    model.setup(tiny_split.train, seed=0)
    for step, loss in enumerate([0.01, 0.01, 10.0]):
        model.loss_history[step].extend([loss, loss])
    t, iw = model.sample_steps(2000)
    assert (t == 2).float().mean() > 0.8
    assert float(iw[t == 2][0]) < 1.0 < float(iw[t == 0][0])


def test_latent_diffrec_trains_and_scores(tiny_split: Split) -> None:
    model = DiffRec(latent_dim=8, hidden=(16,), sampling_steps=2, steps=3)
    model.fit(tiny_split.train, tiny_split.validation_task(), Trainer(max_epochs=2))
    scores = model.score(tiny_split.test_task().histories[:4])
    assert scores.shape == (4, tiny_split.full.n_items) and np.isfinite(scores).all()
    assert model.item_embeddings().shape == (tiny_split.full.n_items, 8)


@pytest.mark.slow
def test_diffrec_beats_popularity_on_planted_taste_clusters() -> None:
    syn = generate(
        users=200, items=150, interactions=3000, clusters=5, chain_probability=0.0,
        drift=0.0, in_cluster=0.95, popularity_exponent=0.5, seed=5,
    )  # fmt: skip
    split = leave_one_out(syn.interactions())
    task = split.test_task()
    pop = create_model("pop")
    pop.fit(split.train)
    model = create_model("diffusion", hidden=(64,), lr=3e-3, batch_size=64)
    model.fit(split.train, split.validation_task(), Trainer(max_epochs=25, patience=4))
    ours, base = (
        evaluate(model, task).mean("ndcg@10"),
        evaluate(pop, task).mean("ndcg@10"),
    )
    assert ours > 3 * base, (ours, base)
