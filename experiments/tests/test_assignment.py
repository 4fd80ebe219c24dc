"""Admin-defined experiments: stable assignment, split, serving settings."""

from __future__ import annotations

import numpy as np
import pytest

from experiments import selectors, services
from experiments.models import Experiment, Variant
from recommendations.engine.bandits.assignment import assign

pytestmark = pytest.mark.django_db


def make_experiment(key="weights-test", shares=(0.3, 0.7), coverage=1.0, start=True):
    exp = Experiment.objects.create(key=key, name=key, coverage=coverage)
    Variant.objects.create(experiment=exp, key="control", position=0, share=shares[0])
    Variant.objects.create(
        experiment=exp, key="explore", position=1, share=shares[1], weights_version=7,
        diversity=0.2, exploration="epsilon_greedy", epsilon=0.15,
    )  # fmt: skip
    if start:
        services.experiment_start(experiment=exp)
        selectors.running_experiments_forget()
    return exp


def test_no_running_experiment_means_the_default() -> None:
    make_experiment(start=False)
    assert selectors.assignment_for(user_id=1) is None
    assert selectors.assignment_for(user_id=None) is None


def test_a_user_keeps_their_variant_and_gets_its_settings() -> None:
    make_experiment()
    first = [selectors.assignment_for(user_id=u) for u in range(1, 200)]
    again = [selectors.assignment_for(user_id=u) for u in range(1, 200)]
    assert first == again
    explore = next(a for a in first if a.variant == "explore")
    assert explore.weights_version == 7 and explore.diversity == 0.2
    assert explore.exploration.kind == "epsilon_greedy"
    assert explore.exploration.epsilon == 0.15
    assert explore.policy() == {
        "weights_version": 7, "experiment": "weights-test", "variant": "explore",
        "policy": "epsilon_greedy",
    }  # fmt: skip
    control = next(a for a in first if a.variant == "control")
    assert control.exploration is None
    assert control.policy(weights_version=4)["weights_version"] == 4


def test_the_split_follows_the_shares_and_matches_growthbook() -> None:
    make_experiment()
    got = [selectors.assignment_for(user_id=u).variant for u in range(1, 4001)]
    share = np.mean([v == "explore" for v in got])
    assert share == pytest.approx(0.7, abs=0.03)  # 4 sd at n = 4000
    # any GrowthBook SDK (hash v2, seed = key, user id as a string) agrees
    for u in range(1, 50):
        i = assign("weights-test", str(u), [0.3, 0.7], version=2)
        assert got[u - 1] == ("control", "explore")[i]


def test_coverage_leaves_users_on_the_default() -> None:
    make_experiment(coverage=0.5)
    got = [selectors.assignment_for(user_id=u) for u in range(1, 2001)]
    assert np.mean([a is None for a in got]) == pytest.approx(0.5, abs=0.05)


def test_a_stopped_experiment_no_longer_assigns() -> None:
    exp = make_experiment()
    assert selectors.assignment_for(user_id=5) is not None
    services.experiment_stop(experiment=exp)
    selectors.running_experiments_forget()
    assert selectors.assignment_for(user_id=5) is None
