"""The mSPRT stopping rule: valid under peeking, and it does detect effects."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.engine.bandits.sequential import (
    RunningMean,
    compare,
    half_width,
    mean_interval,
    mixture_p_value,
)


def _run(p_a: float, p_b: float, rng, looks=60, batch=200, tau=0.02) -> str:
    a, b = rng.random((looks, batch)) < p_a, rng.random((looks, batch)) < p_b
    for t in range(1, looks + 1):
        xa, xb = a[:t].ravel(), b[:t].ravel()
        r = compare(
            len(xa), xa.mean(), xa.var(ddof=1), len(xb), xb.mean(), xb.var(ddof=1),
            tau=tau, alpha=0.05,
        )  # fmt: skip
        if r.decision != "continue":
            return r.decision
    return "continue"


def test_peeking_after_every_batch_keeps_the_error_rate_below_alpha() -> None:
    rng = np.random.default_rng(0)
    decisions = [_run(0.1, 0.1, rng) for _ in range(300)]
    false_positive = np.mean([d != "continue" for d in decisions])
    # always valid: <= 0.05 (a one-sided binomial margin over 300 runs)
    assert false_positive <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 300)


def test_naive_peeking_would_have_failed_the_same_check() -> None:
    """The check above can fail: a fixed-horizon z-test looked at 60 times does."""
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(300):
        a, b = rng.random((60, 200)) < 0.1, rng.random((60, 200)) < 0.1
        for t in range(1, 61):
            xa, xb = a[:t].ravel(), b[:t].ravel()
            se = np.sqrt(xa.var(ddof=1) / len(xa) + xb.var(ddof=1) / len(xb))
            if se > 0 and abs(xb.mean() - xa.mean()) / se > 1.96:
                hits += 1
                break
    assert hits / 300 > 0.15


def test_a_real_difference_is_found_in_the_right_direction() -> None:
    rng = np.random.default_rng(1)
    decisions = [_run(0.10, 0.14, rng) for _ in range(40)]
    assert np.mean([d == "B" for d in decisions]) > 0.8
    assert "A" not in decisions


def test_interval_and_p_value_formulas() -> None:
    v, tau, alpha = 1e-4, 0.02, 0.05
    w = half_width(v, tau, alpha)
    # at the boundary the mixture likelihood ratio is exactly 1 / alpha
    assert mixture_p_value(w, v, tau) == pytest.approx(alpha)
    assert mixture_p_value(0.0, v, tau) == 1.0
    lo, hi = mean_interval(0.1, 0.09, 10_000)
    assert lo < 0.1 < hi and hi - lo < 0.05


def test_running_mean_matches_numpy() -> None:
    xs = np.random.default_rng(2).random(100)
    rm = RunningMean()
    for x in xs:
        rm.add(float(x))
    assert rm.mean == pytest.approx(xs.mean()) and rm.variance == pytest.approx(
        xs.var(ddof=1)
    )
