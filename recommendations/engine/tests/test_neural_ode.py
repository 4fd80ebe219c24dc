"""Neural ODE (ODE-RNN): solvers vs analytic ODEs, serving vs training solver."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import expm
from torchdiffeq import odeint

from recommendations.engine.data import History, Split, leave_one_out
from recommendations.engine.data.synthetic import generate
from recommendations.engine.evaluation import evaluate
from recommendations.engine.models import create_model
from recommendations.engine.models.neural_ode import (
    NeuralODE,
    ODEFunc,
    QuantumFluid,
    Rescaled,
    rk4_solve,
)
from recommendations.engine.training import Trainer


def _linear_system() -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.tensor([[-0.5, 1.0, 0.0], [-1.0, -0.2, 0.3], [0.0, 0.4, -0.8]])
    return a.double(), torch.tensor([[1.0, -0.5, 2.0]]).double()


def test_rk4_and_torchdiffeq_match_the_analytic_linear_ode() -> None:
    a, h0 = _linear_system()
    delta = 1.7
    exact = expm(a.numpy() * delta) @ h0.numpy()[0]  # h(t) = exp(A t) h0

    def f(h: torch.Tensor) -> torch.Tensor:
        return delta * h @ a.T  # rescaled: dh/ds = delta A h

    ours = rk4_solve(f, h0, steps=16)[0]
    ref = odeint(lambda s, h: f(h), h0, torch.tensor([0.0, 1.0]).double(),
                 method="dopri5", rtol=1e-9, atol=1e-10)[-1, 0]  # fmt: skip
    np.testing.assert_allclose(ours, exact, rtol=1e-5)
    np.testing.assert_allclose(ref, exact, rtol=1e-6)
    # 4th order: the error shrinks ~16x when the step halves
    coarse = rk4_solve(f, h0, steps=2)[0].numpy()
    finer = rk4_solve(f, h0, steps=4)[0].numpy()
    assert np.abs(finer - exact).max() < np.abs(coarse - exact).max() / 8


def test_phase_term_rotates_the_complex_state_exactly() -> None:
    func = ODEFunc(4, 8, phase=True).double()  # learned drift starts at zero
    with torch.no_grad():
        func.omega.copy_(torch.tensor([0.7, -1.3]))
    z0 = torch.tensor([[1.0, 0.5, 0.0, 2.0]]).double()  # re = (1, .5), im = (0, 2)
    delta = torch.tensor([[2.0]]).double()
    out = rk4_solve(lambda h: Rescaled(func, delta)(None, h), z0, steps=32)[0]
    z = (z0[0, :2] + 1j * z0[0, 2:]).numpy() * np.exp(1j * np.array([0.7, -1.3]) * 2)
    np.testing.assert_allclose(
        out.detach(), np.concatenate([z.real, z.imag]), atol=1e-5
    )


@pytest.fixture(scope="module")
def ode_model(tiny_split: Split) -> NeuralODE:
    model = NeuralODE(dim=16, ode_hidden=16, max_len=20, phase=True)
    model.fit(tiny_split.train, tiny_split.validation_task(), Trainer(max_epochs=2))
    return model


def test_serving_rk4_agrees_with_torchdiffeq(ode_model: NeuralODE) -> None:
    net = ode_model.net
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(8, 16, generator=gen)
    delta = torch.rand(8, generator=gen) * 3
    with torch.no_grad():
        net.ode.net[2].weight.normal_(0, 0.3, generator=gen)  # a non-trivial field
        served = net.evolve(h, delta, train=False)
        ref = odeint(Rescaled(net.ode, delta[:, None]), h, torch.tensor([0.0, 1.0]),
                     method="dopri5", rtol=1e-7, atol=1e-8)[-1]  # fmt: skip
        trained = net.evolve(h, delta, train=True)  # torchdiffeq, same steps
    np.testing.assert_allclose(served, trained, atol=5e-3)
    np.testing.assert_allclose(served, ref, atol=2e-2)  # vs an adaptive solver
    assert (served - h).abs().max() > 0.1  # the state really moved


def test_time_gaps_change_the_scores(tiny_split: Split) -> None:
    model = NeuralODE(dim=16, ode_hidden=16, max_len=20)
    model.fit(tiny_split.train, None, Trainer(max_epochs=1))
    with torch.no_grad():
        model.net.ode.net[2].weight.normal_(0, 0.3)
    items = np.array([1, 2, 3])
    quick = History(items, np.array([0, 60, 120]))
    slow = History(items, np.array([0, 60 * 86_400, 120 * 86_400]))
    a, b = model.score([quick, slow])
    assert np.abs(a - b).max() > 1e-4


def test_quantum_fluid_is_the_phase_variant() -> None:
    assert QuantumFluid().config.phase and not NeuralODE().config.phase
    with pytest.raises(ValueError):
        NeuralODE(phase=True, dim=15)


@pytest.mark.slow
def test_neural_ode_beats_popularity_on_planted_chains() -> None:
    syn = generate(
        users=150, items=80, interactions=2400, clusters=4, chain_probability=0.9,
        chain_length=8, seed=11,
    )  # fmt: skip
    split = leave_one_out(syn.interactions())
    task = split.test_task()
    pop = create_model("pop")
    pop.fit(split.train)
    model = create_model("neural_ode", dim=32, ode_hidden=32, max_len=20, lr=5e-3)
    model.fit(split.train, split.validation_task(), Trainer(max_epochs=12, patience=3))
    ours = evaluate(model, task).mean("ndcg@10")
    base = evaluate(pop, task).mean("ndcg@10")
    assert ours > 3 * base, (ours, base)
