"""Confidence intervals and paired tests over per-user metric vectors."""

from __future__ import annotations

import numpy as np
import scipy.stats


def mean_ci(values: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Mean and Student-t interval of ``values`` (NaN ignored)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "low": mean, "high": mean, "n": n}
    half = float(scipy.stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def paired_ttest(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Paired t-test of ``a - b`` with a confidence interval of the mean difference."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError("paired vectors must have the same shape")
    diff = a - b
    ci = mean_ci(diff, level)
    result = scipy.stats.ttest_rel(a, b, nan_policy="omit")
    return {
        "mean_diff": ci["mean"], "low": ci["low"], "high": ci["high"],
        "t": float(result.statistic), "p_value": float(result.pvalue),
    }  # fmt: skip


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Paired bootstrap of the mean of ``a - b`` (percentile interval).

    ``p_value`` is the two-sided share of resampled means on the other side
    of zero (a standard bootstrap sign test).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError("paired vectors must have the same shape")
    diff = a - b
    diff = diff[~np.isnan(diff)]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(n_resamples, len(diff)))
    means = diff[idx].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    p = 2 * min((means <= 0).mean(), (means >= 0).mean())
    return {
        "mean_diff": float(diff.mean()), "low": float(low), "high": float(high),
        "p_value": float(min(p, 1.0)),
    }  # fmt: skip
