"""A stopping rule that is safe to look at after every impression.

Peeking at a fixed-horizon test's p-value and stopping at the first
``p < alpha`` inflates the false-positive rate far above ``alpha``. The
always-valid alternative used here is the mixture sequential probability
ratio test (mSPRT) with a normal mixing distribution: Robbins, "Statistical
methods related to the law of the iterated logarithm", Ann. Math. Statist.
1970; Johari, Koomen, Pekelis & Walsh, "Peeking at A/B Tests: Why it
matters, and what to do about it", KDD 2017 (and "Always Valid Inference",
Operations Research 2022).

For a difference of means ``theta = mean_B - mean_A`` estimated by
``theta_hat`` with variance ``V = s_A^2 / n_A + s_B^2 / n_B``, and the mixing
distribution ``theta ~ N(0, tau^2)`` under the alternative, the mixture
likelihood ratio against ``theta = theta_0`` is

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 (theta_hat - theta_0)^2
                                          / (2 V (V + tau^2)))

and by Ville's inequality ``P(sup_n Lambda_n >= 1 / alpha) <= alpha`` under
``theta_0``. Inverting gives the confidence sequence (valid at every look at
once): ``theta_hat +- sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) +
log((V + tau^2) / V)))``. The rule: stop the first time the sequence
excludes 0 (the variant whose mean is higher wins); otherwise keep going
(or stop at a horizon and call it inconclusive). The always-valid p-value is
``min(1, 1 / Lambda)`` at ``theta_0 = 0``, minimised over the looks so far.

Departures: ``s^2`` is the plug-in sample variance (the papers assume it
known; Johari et al. use the same plug-in for Bernoulli metrics), and slates
from the same user are treated as independent. ``tau`` is set on the scale
of the effects worth detecting (default 0.02 on a click-through rate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from recommendations.engine.errors import ConfigError


@dataclass(frozen=True)
class SequentialResult:
    """One look at the difference ``B - A``."""

    difference: float
    lower: float
    upper: float
    p_value: float  # at this look (take the running minimum over looks)
    decision: str  # "continue" | "B" (B better) | "A" (A better)
    n_a: int
    n_b: int


def half_width(variance: float, tau: float, alpha: float) -> float:
    """Half-width of the normal-mixture confidence sequence at variance ``V``."""
    if not 0 < alpha < 1 or tau <= 0:
        raise ConfigError("need 0 < alpha < 1 and tau > 0")
    if variance <= 0:
        return 0.0 if variance == 0 else math.inf
    t2 = tau * tau
    return math.sqrt(
        variance
        * (variance + t2)
        / t2
        * (2.0 * math.log(1.0 / alpha) + math.log((variance + t2) / variance))
    )


def mixture_p_value(estimate: float, variance: float, tau: float) -> float:
    """``min(1, 1 / Lambda)`` against ``theta = 0``."""
    if variance <= 0:
        return 1.0 if estimate == 0 else 0.0
    t2 = tau * tau
    log_lambda = 0.5 * math.log(variance / (variance + t2)) + t2 * estimate**2 / (
        2.0 * variance * (variance + t2)
    )
    return float(min(1.0, math.exp(-log_lambda)))


def mean_interval(
    mean: float, variance: float, n: int, *, tau: float = 0.02, alpha: float = 0.05
) -> tuple[float, float]:
    """Always-valid interval of one mean (per-variant metrics)."""
    if n < 2:
        return (-math.inf, math.inf)
    w = half_width(variance / n, tau, alpha)
    return (mean - w, mean + w)


def compare(
    n_a: int,
    mean_a: float,
    var_a: float,
    n_b: int,
    mean_b: float,
    var_b: float,
    *,
    tau: float = 0.02,
    alpha: float = 0.05,
    min_samples: int = 100,
) -> SequentialResult:
    """One look at the two arms' running means and sample variances.

    ``min_samples`` per arm before any decision: the plug-in variance of a
    rare event is unreliable on a handful of samples (a zero variance would
    give a zero-width interval).
    """
    diff = mean_b - mean_a
    if n_a < 2 or n_b < 2:
        return SequentialResult(diff, -math.inf, math.inf, 1.0, "continue", n_a, n_b)
    v = var_a / n_a + var_b / n_b
    w = half_width(v, tau, alpha)
    p = mixture_p_value(diff, v, tau)
    decision = "continue"
    if min(n_a, n_b) >= min_samples and v > 0:
        if diff - w > 0:
            decision = "B"
        elif diff + w < 0:
            decision = "A"
    return SequentialResult(diff, diff - w, diff + w, p, decision, n_a, n_b)


@dataclass
class RunningMean:
    """Welford's running mean and variance (one arm's metric)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0
