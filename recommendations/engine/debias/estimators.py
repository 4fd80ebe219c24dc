"""Off-policy value estimators: IPS, SNIPS and doubly robust (DR).

Dudík, Langford & Li, "Doubly Robust Policy Evaluation and Learning",
ICML 2011; Dudík, Erhan, Langford & Li, "Doubly Robust Policy Evaluation and
Optimization", Statistical Science 2014. SNIPS: Swaminathan & Joachims,
"The Self-Normalized Estimator for Counterfactual Learning", NeurIPS 2015.

Every estimator works on ``n`` logged samples ``(x_i, a_i, r_i)`` with the
logging propensity ``p_i = mu(a_i | x_i)`` and the target policy's probability
``pi_i = pi(a_i | x_i)`` of the same action. The importance weight is
``w_i = pi_i / p_i``.

- IPS: ``mean(w_i r_i)``.
- SNIPS: ``sum(w_i r_i) / sum(w_i)``.
- DR, per sample: ``d_i + w_i (r_i - rhat_i)``, where ``rhat_i`` is the reward
  model at the logged action and ``d_i = sum_a pi(a | x_i) rhat(x_i, a)`` the
  direct-method value of the target policy in context ``x_i``. For a
  deterministic target that picks the logged action (``pi_i = 1``),
  ``d_i = rhat_i`` and the term is ``rhat_i + (r_i - rhat_i) / p_i``.

Options: ``clip`` caps each weight at ``clip`` (weight clipping, Dudík et al.
2014 §5 / Bottou et al. 2013; biased, lower variance); ``self_normalize``
divides the weighted sums by ``sum(w_i)`` instead of ``n`` (for DR, only the
correction term is normalised).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommendations.engine.errors import ConfigError


@dataclass(frozen=True)
class Estimate:
    """A value estimate with its per-sample terms and a normal 95 % interval."""

    value: float
    terms: np.ndarray  # (n,) per-sample contributions (mean = value without SN)
    stderr: float
    n: int
    effective_n: float  # (sum w)^2 / sum w^2, Kish's effective sample size

    @property
    def interval(self) -> tuple[float, float]:
        return (self.value - 1.96 * self.stderr, self.value + 1.96 * self.stderr)


def _arrays(*values: np.ndarray | float) -> list[np.ndarray]:
    arrays = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in values]
    n = max(len(a) for a in arrays)
    out = []
    for a in arrays:
        if len(a) not in (1, n):
            raise ConfigError("estimator inputs must have equal lengths")
        out.append(np.broadcast_to(a, (n,)))
    return out


def weights(
    propensities: np.ndarray | float,
    target_probs: np.ndarray | float,
    *,
    clip: float | None = None,
) -> np.ndarray:
    """Importance weights ``pi / p``, capped at ``clip`` when given."""
    p, pi = _arrays(propensities, target_probs)
    if (p <= 0).any() or (p > 1).any():
        raise ConfigError("propensities must lie in (0, 1]")
    if (pi < 0).any() or (pi > 1).any():
        raise ConfigError("target probabilities must lie in [0, 1]")
    if clip is not None and clip <= 0:
        raise ConfigError("clip must be positive")
    w = pi / p
    capped: np.ndarray = np.minimum(w, clip) if clip is not None else w
    return capped


def _estimate(terms: np.ndarray, value: float, w: np.ndarray) -> Estimate:
    n = len(terms)
    stderr = float(terms.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    ess = float(w.sum() ** 2 / max((w**2).sum(), 1e-300))
    return Estimate(float(value), terms, stderr, n, ess)


def ips(
    rewards: np.ndarray | float,
    propensities: np.ndarray | float,
    target_probs: np.ndarray | float,
    *,
    clip: float | None = None,
    self_normalize: bool = False,
) -> Estimate:
    """Inverse propensity scoring; ``self_normalize=True`` is SNIPS."""
    r, _, _ = _arrays(rewards, propensities, target_probs)
    w = weights(propensities, target_probs, clip=clip)
    w = np.broadcast_to(w, r.shape)
    terms = w * r
    if self_normalize:
        total = w.sum()
        value = terms.sum() / total if total > 0 else 0.0
        terms = terms / max(w.mean(), 1e-300)
        return _estimate(terms, value, w)
    return _estimate(terms, terms.mean(), w)


def snips(
    rewards: np.ndarray | float,
    propensities: np.ndarray | float,
    target_probs: np.ndarray | float,
    *,
    clip: float | None = None,
) -> Estimate:
    """Self-normalised IPS: ``sum(w r) / sum(w)``."""
    return ips(rewards, propensities, target_probs, clip=clip, self_normalize=True)


def dr_terms(
    rewards: np.ndarray | float,
    propensities: np.ndarray | float,
    target_probs: np.ndarray | float,
    reward_hat: np.ndarray | float,
    direct: np.ndarray | float,
    *,
    clip: float | None = None,
) -> np.ndarray:
    """Per-sample DR terms ``direct + w (r - reward_hat)``, ``(n,)``."""
    r, _, _, rh, d = _arrays(rewards, propensities, target_probs, reward_hat, direct)
    w = np.broadcast_to(weights(propensities, target_probs, clip=clip), r.shape)
    terms: np.ndarray = d + w * (r - rh)
    return terms


def dr(
    rewards: np.ndarray | float,
    propensities: np.ndarray | float,
    target_probs: np.ndarray | float,
    reward_hat: np.ndarray | float,
    direct: np.ndarray | float,
    *,
    clip: float | None = None,
    self_normalize: bool = False,
) -> Estimate:
    """Doubly robust estimate (see module docstring).

    Args:
        rewards: ``(n,)`` observed rewards ``r_i``.
        propensities: ``(n,)`` logging propensities ``p_i`` in ``(0, 1]``.
        target_probs: ``(n,)`` target probabilities ``pi_i`` of the logged action.
        reward_hat: ``(n,)`` reward model at the logged action.
        direct: ``(n,)`` direct-method value of the target in each context
            (``reward_hat`` when the target deterministically picks the
            logged action).
        clip: cap on the importance weights.
        self_normalize: normalise the correction by ``sum(w)`` instead of ``n``.
    """
    r, _, _, rh, d = _arrays(rewards, propensities, target_probs, reward_hat, direct)
    w = np.broadcast_to(weights(propensities, target_probs, clip=clip), r.shape)
    terms = d + w * (r - rh)
    if not self_normalize:
        return _estimate(terms, terms.mean(), w)
    total = w.sum()
    correction = (w * (r - rh)).sum() / total if total > 0 else 0.0
    value = d.mean() + correction
    sn_terms = d + w * (r - rh) / max(w.mean(), 1e-300)
    return _estimate(sn_terms, value, w)
