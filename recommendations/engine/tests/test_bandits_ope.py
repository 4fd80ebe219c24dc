"""Slate estimators against a hand-computed log; blend search on a simulator."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.engine.bandits.blend import (
    SlateBatch,
    evaluate_weights,
    search_weights,
)
from recommendations.engine.bandits.exploration import ExplorationConfig
from recommendations.engine.bandits.ope import LoggedSlates, dr, ips, snips, switch_dr
from recommendations.engine.bandits.simulator import Simulator, synthetic_click_model
from recommendations.engine.data.synthetic import generate
from recommendations.engine.errors import ConfigError

# Two slates, two positions (see the module docstring of bandits.ope):
# w = pi / mu = [[2, 0], [1, 2]].
LOGS = LoggedSlates.from_lists([[1, 0], [0, 1]], [[0.5, 0.25], [1.0, 0.5]])
TARGET = np.array([[1.0, 0.0], [1.0, 1.0]])
RHAT = np.array([[0.5, 0.2], [0.4, 0.3]])
DIRECT = np.array([[0.6, 0.1], [0.4, 0.3]])


def test_ips_by_hand() -> None:
    # slate 1: 2*1 + 0*0 = 2; slate 2: 1*0 + 2*1 = 2
    est = ips(LOGS, TARGET)
    assert est.value == pytest.approx(2.0)
    assert est.terms.tolist() == [2.0, 2.0]


def test_snips_by_hand() -> None:
    # position 0: (2*1 + 1*0) / (2 + 1) = 2/3; position 1: (0 + 2*1) / (0 + 2) = 1
    assert snips(LOGS, TARGET).value == pytest.approx(2 / 3 + 1)


def test_dr_by_hand() -> None:
    # slate 1: (0.6 + 2 (1 - 0.5)) + (0.1 + 0) = 1.7
    # slate 2: (0.4 + 1 (0 - 0.4)) + (0.3 + 2 (1 - 0.3)) = 1.7
    assert dr(LOGS, TARGET, RHAT, DIRECT).value == pytest.approx(1.7)


def test_switch_dr_by_hand() -> None:
    # tau = 1.5 drops the corrections with w = 2: slate 1: 0.6 + 0.1;
    # slate 2: (0.4 - 0.4) + 0.3  -> mean (0.7 + 0.3) / 2
    assert switch_dr(LOGS, TARGET, RHAT, DIRECT, tau=1.5).value == pytest.approx(0.5)
    # a large tau is plain DR
    assert switch_dr(LOGS, TARGET, RHAT, DIRECT, tau=1e9).value == pytest.approx(1.7)


def test_padding_positions_do_not_count() -> None:
    logs = LoggedSlates.from_lists([[1], [0, 1]], [[0.5], [1.0, 0.5]])
    target = np.array([[1.0, 1.0], [1.0, 1.0]])
    assert ips(logs, target).value == pytest.approx((2 + 2) / 2)


def test_bad_propensities_are_refused() -> None:
    with pytest.raises(ConfigError):
        LoggedSlates.from_lists([[1]], [[0.0]])


@pytest.fixture(scope="module")
def sim() -> Simulator:
    data = generate(users=120, items=100, interactions=2400, seed=4)
    return Simulator.with_members(
        synthetic_click_model(data, k=5),
        noise=0.7,
        seed=4,
        n_candidates=20,
        slate_size=5,
    )


def test_estimates_track_the_true_value_on_the_simulator(sim: Simulator) -> None:
    rng = np.random.default_rng(5)
    logging = np.array([0.5, 0.3, 0.2])
    batch, _ = sim.log(
        logging, ExplorationConfig(kind="epsilon_greedy", epsilon=0.3), 6000, rng
    )
    for target in ([1.0, 0.0, 0.0], [0.2, 0.8, 0.0]):
        truth = sim.true_value(np.array(target))
        est = evaluate_weights(batch, np.array(target))
        assert est["dr"].value == pytest.approx(truth, rel=0.15), target
        assert est["snips"].value == pytest.approx(truth, rel=0.25), target


def test_search_prefers_the_member_that_knows_the_truth(sim: Simulator) -> None:
    rng = np.random.default_rng(6)
    explore = ExplorationConfig(kind="epsilon_greedy", epsilon=0.3)
    batch, _ = sim.log(np.array([0.3, 0.4, 0.3]), explore, 4000, rng)
    choice = search_weights(batch, samples=40, seed=0)
    assert choice.weights["truth"] > choice.weights["noise"]
    assert sim.true_value(np.array(list(choice.weights.values()))) > sim.true_value(
        np.array([0.3, 0.4, 0.3])
    )


def test_slate_batch_from_records_round_trips() -> None:
    records = [
        {"candidates": {"a": [1.0, 0.0, 0.5], "b": [0.0, 1.0, 0.5]},
         "shown": [2, 0], "propensities": [0.9, 0.1], "rewards": [1, 0]},
        {"candidates": {"a": [0.2, 0.1], "b": [0.3, 0.4]},
         "shown": [1], "propensities": [1.0], "rewards": [0]},
    ]  # fmt: skip
    batch = SlateBatch.from_records(records, ("a", "b"))
    assert batch.scores.shape == (2, 3, 2) and batch.shown.tolist() == [[2, 0], [1, -1]]
    assert batch.candidate_mask.tolist() == [[True, True, True], [True, True, False]]
    est = evaluate_weights(batch, np.array([1.0, 0.0]))
    assert np.isfinite(est["dr"].value)
