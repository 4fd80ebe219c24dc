"""The simulator: planted preferences, position bias, exact slate values."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.engine.bandits.exploration import ExplorationConfig
from recommendations.engine.bandits.simulator import (
    Simulator,
    fitted_click_model,
    position_bias,
    synthetic_click_model,
)
from recommendations.engine.data.synthetic import generate


def test_position_bias_decreases() -> None:
    assert position_bias(3).tolist() == pytest.approx([1.0, 0.5, 1 / 3])


def test_users_prefer_their_planted_cluster() -> None:
    data = generate(users=50, items=60, interactions=1000, seed=1)
    model = synthetic_click_model(data)
    t = data.truth
    home = t.item_cluster[None, :] == t.user_cluster[:, None]
    assert model.attraction[home].mean() > 5 * model.attraction[~home].mean()


def test_on_policy_clicks_match_the_exact_value_and_truth_beats_noise() -> None:
    data = generate(users=80, items=80, interactions=1600, seed=2)
    sim = Simulator.with_members(synthetic_click_model(data, k=5), seed=2,
                                 n_candidates=20, slate_size=5)  # fmt: skip
    good, bad = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    exact = sim.true_value(good)
    measured = sim.on_policy(good, 20_000, np.random.default_rng(0))
    assert measured == pytest.approx(exact, rel=0.05)
    assert exact > 1.3 * sim.true_value(bad)
    # exploration costs clicks
    explored = sim.on_policy(
        good,
        20_000,
        np.random.default_rng(1),
        ExplorationConfig(kind="epsilon_greedy", epsilon=0.5),
    )
    assert explored < exact


def test_a_model_fitted_to_a_log_reproduces_its_mean_rate() -> None:
    data = generate(users=60, items=50, interactions=1200, seed=3).interactions()
    model = fitted_click_model(data, factors=8, mean_ctr=0.05)
    assert model.attraction.mean() == pytest.approx(0.05, rel=0.05)
    # consumed items are more attractive than the rest
    seen = data.matrix().toarray() > 0
    assert model.attraction[seen].mean() > 2 * model.attraction[~seen].mean()
