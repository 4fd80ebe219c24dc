"""IPS / SNIPS / DR estimators and exposure propensities on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.engine.debias import (
    dr,
    dr_terms,
    exposure_propensities,
    fit_popularity_power,
    ips,
    snips,
)
from recommendations.engine.errors import ConfigError


def test_design_worked_example_blockbuster_and_niche() -> None:
    # blockbuster p=0.8, r=1, rhat=0.9, pi=1 -> 0.9 + (1 - 0.9) / 0.8 = 1.025
    # niche       p=0.05, r=1, rhat=0.5, pi=1 -> 0.5 + (1 - 0.5) / 0.05 = 10.5
    terms = dr_terms([1.0, 1.0], [0.8, 0.05], [1.0, 1.0], [0.9, 0.5], [0.9, 0.5])
    np.testing.assert_allclose(terms, [1.025, 10.5])
    assert dr(1.0, 0.8, 1.0, 0.9, 0.9).value == pytest.approx(1.025)
    assert dr(1.0, 0.05, 1.0, 0.5, 0.5).value == pytest.approx(10.5)
    assert dr([1, 1], [0.8, 0.05], 1.0, [0.9, 0.5], [0.9, 0.5]).value == (
        pytest.approx((1.025 + 10.5) / 2)
    )


def test_ips_and_snips_by_hand() -> None:
    r, p, pi = [1.0, 0.0, 1.0], [0.5, 0.25, 0.1], [1.0, 0.5, 0.2]
    # weights 2, 2, 2 -> IPS = (2 + 0 + 2) / 3, SNIPS = 4 / 6
    assert ips(r, p, pi).value == pytest.approx(4 / 3)
    assert snips(r, p, pi).value == pytest.approx(4 / 6)
    # unequal weights: w = 4, 1 -> IPS = (4*1 + 1*0)/2 = 2, SNIPS = 4 / 5
    assert ips([1, 0], [0.25, 1.0], [1, 1]).value == pytest.approx(2.0)
    assert snips([1, 0], [0.25, 1.0], [1, 1]).value == pytest.approx(0.8)


def test_clipping_caps_the_weights() -> None:
    # niche weight 1/0.05 = 20 clipped to 5: 0.5 + 5 * 0.5 = 3.0
    assert dr(1.0, 0.05, 1.0, 0.5, 0.5, clip=5.0).value == pytest.approx(3.0)
    assert ips(1.0, 0.05, 1.0, clip=5.0).value == pytest.approx(5.0)


def test_self_normalised_dr_by_hand() -> None:
    # w = 1.25, 20; corrections 0.1, 0.5 -> (0.125 + 10) / 21.25; direct mean 0.7
    est = dr([1, 1], [0.8, 0.05], 1.0, [0.9, 0.5], [0.9, 0.5], self_normalize=True)
    assert est.value == pytest.approx(0.7 + 10.125 / 21.25)


def test_dr_is_exact_when_the_reward_model_is_exact() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 1.0, 500)
    r = rng.uniform(0, 1, 500)
    est = dr(r, p, 1.0, r, r)
    assert est.value == pytest.approx(r.mean()) and est.stderr >= 0


def test_dr_is_unbiased_with_a_wrong_reward_model_and_true_propensities() -> None:
    # two actions, logging mu = (0.8, 0.2), target always picks action 1
    rng = np.random.default_rng(1)
    n = 200_000
    mu = np.array([0.8, 0.2])
    true_r = np.array([0.3, 0.7])
    a = rng.choice(2, size=n, p=mu)
    r = (rng.random(n) < true_r[a]).astype(float)
    rhat = np.array([0.5, 0.5])  # wrong model
    pi = (a == 1).astype(float)
    est = dr(r, mu[a], pi, rhat[a], np.full(n, rhat[1]))
    assert est.value == pytest.approx(0.7, abs=0.01)
    assert abs(rhat[1] - 0.7) > 0.1  # the direct method alone would be wrong


def test_estimators_reject_invalid_inputs() -> None:
    with pytest.raises(ConfigError):
        ips([1.0], [0.0], [1.0])
    with pytest.raises(ConfigError):
        ips([1.0], [1.5], [1.0])
    with pytest.raises(ConfigError):
        ips([1.0, 1.0], [0.5, 0.5, 0.5], [1.0])
    with pytest.raises(ConfigError):
        dr(1.0, 0.5, 1.0, 0.5, 0.5, clip=0.0)


def test_fitted_power_recovers_a_zipf_exponent() -> None:
    counts = 1000.0 * np.arange(1, 201) ** -1.2
    assert fit_popularity_power(counts) == pytest.approx(1.2, abs=1e-6)


def test_exposure_propensities_follow_popularity_to_a_power() -> None:
    counts = np.array([100, 25, 4, 0])
    p = exposure_propensities(counts, power=0.5, floor=0.01)
    np.testing.assert_allclose(p, [1.0, 0.5, 0.2, 0.2])
    fitted = exposure_propensities(counts)
    assert (np.diff(fitted[:3]) < 0).all() and fitted.max() == 1.0
    assert exposure_propensities(counts, power=3.0, floor=0.05).min() == 0.05
    with pytest.raises(ConfigError):
        exposure_propensities(np.array([-1, 2]))
