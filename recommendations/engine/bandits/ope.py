"""Off-policy estimators over logged slates: IPS, SNIPS, DR and Switch-DR.

A logged slate ``s`` (context ``x_s``: user, request) shows item ``a_sk`` at
position ``k`` with the logging propensity ``mu_sk = mu_k(a_sk | x_s)`` and
earns the reward ``r_sk`` (a click on it). The value of a policy is the
expected reward per slate, ``V(pi) = E_x sum_k E_{a ~ pi_k(. | x)} r(x, a, k)``.
The estimators use the *item-position* decomposition (the independent-IPS of
Li, Kim, Zhang, Nilsson & Cheng, "Offline Evaluation of Ranking Policies with
Click Models", KDD 2018): the reward at a position depends only on the item
shown there, so each position is a contextual bandit with propensity
``mu_sk`` and target probability ``pi_sk = pi_k(a_sk | x_s)``,
``w_sk = pi_sk / mu_sk``. Departure: the item-position assumption ignores
interactions between slots (a click on slot 1 changing slot 2's chance), a
bias the pseudo-inverse estimator (Swaminathan et al., NeurIPS 2017) would
avoid at a much larger variance.

Per slate, summed over the positions ``k`` of the slate:

- IPS (Horvitz & Thompson 1952; Li et al. 2018): ``sum_k w_sk r_sk``.
- SNIPS (Swaminathan & Joachims, NeurIPS 2015), per position:
  ``sum_k (sum_s w_sk r_sk) / (sum_s w_sk)``.
- DR (Dudík, Langford & Li, ICML 2011): ``sum_k [d_sk + w_sk (r_sk - rhat_sk)]``
  with ``rhat_sk = rhat(x_s, a_sk, k)`` the reward model at the logged item
  and ``d_sk = sum_a pi_k(a | x_s) rhat(x_s, a, k)`` the direct-method value
  of the target at ``k`` (for a deterministic target, ``rhat`` of its item).
- Switch-DR (Wang, Agarwal & Dudík, "Optimal and Adaptive Off-policy
  Evaluation in Contextual Bandits", ICML 2017): DR where ``w_sk <= tau``,
  the direct method where the weight is larger:
  ``sum_k [d_sk + w_sk (r_sk - rhat_sk) 1(w_sk <= tau)]`` (the paper's
  definition, written per logged action: the actions with a weight above
  ``tau`` contribute ``pi rhat`` through ``d`` and nothing else).

The value is the mean of the per-slate terms (SNIPS: the ratio above); the
standard error is the per-slate terms' (SNIPS: the delta method). Slates of
different lengths are padded with ``mask = False``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommendations.engine.debias.estimators import Estimate
from recommendations.engine.errors import ConfigError


@dataclass(frozen=True)
class LoggedSlates:
    """``S`` logged slates padded to ``K`` positions."""

    rewards: np.ndarray  # (S, K) r_sk
    propensities: np.ndarray  # (S, K) mu_sk in (0, 1]
    mask: np.ndarray  # (S, K) bool: position k exists in slate s

    def __post_init__(self) -> None:
        r, p, m = self.rewards, self.propensities, self.mask
        if r.shape != p.shape or r.shape != m.shape or r.ndim != 2:
            raise ConfigError("rewards, propensities and mask must be (S, K)")
        if ((p[m] <= 0) | (p[m] > 1)).any():
            raise ConfigError("propensities must lie in (0, 1]")

    @property
    def n(self) -> int:
        return int(self.rewards.shape[0])

    @classmethod
    def from_lists(
        cls, rewards: list[list[float]], propensities: list[list[float]]
    ) -> LoggedSlates:
        k = max((len(x) for x in rewards), default=0)
        s = len(rewards)
        r, p, m = np.zeros((s, k)), np.ones((s, k)), np.zeros((s, k), bool)
        for i, (ri, pi) in enumerate(zip(rewards, propensities, strict=True)):
            if len(ri) != len(pi):
                raise ConfigError("each slate needs one propensity per reward")
            r[i, : len(ri)], p[i, : len(pi)], m[i, : len(ri)] = ri, pi, True
        return cls(r, p, m)


def _weights(logs: LoggedSlates, target: np.ndarray) -> np.ndarray:
    pi = np.asarray(target, dtype=np.float64)
    if pi.shape != logs.rewards.shape:
        raise ConfigError("target probabilities must be (S, K)")
    if ((pi < 0) | (pi > 1))[logs.mask].any():
        raise ConfigError("target probabilities must lie in [0, 1]")
    w: np.ndarray = np.where(logs.mask, pi / logs.propensities, 0.0)
    return w


def _estimate(terms: np.ndarray, value: float, w: np.ndarray) -> Estimate:
    n = len(terms)
    stderr = float(terms.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    flat = w[w > 0]
    ess = float(flat.sum() ** 2 / max((flat**2).sum(), 1e-300)) if len(flat) else 0.0
    return Estimate(float(value), terms, stderr, n, ess)


def ips(logs: LoggedSlates, target: np.ndarray) -> Estimate:
    """Item-position IPS: mean over slates of ``sum_k w_sk r_sk``."""
    w = _weights(logs, target)
    terms = (w * logs.rewards).sum(axis=1)
    return _estimate(terms, float(terms.mean()) if logs.n else 0.0, w)


def snips(logs: LoggedSlates, target: np.ndarray) -> Estimate:
    """Self-normalised IPS, normalised per position."""
    w = _weights(logs, target)
    wr = w * logs.rewards
    total_w = w.sum(axis=0)  # (K,)
    safe = np.where(total_w > 0, total_w, 1.0)
    per_position = np.where(total_w > 0, wr.sum(axis=0) / safe, 0.0)
    value = float(per_position.sum())
    # delta method: influence of slate s on sum_k (sum wr / sum w)
    s = max(logs.n, 1)
    influence = np.where(
        total_w > 0, (wr - w * per_position[None, :]) / (safe[None, :] / s), 0.0
    ).sum(axis=1)
    return _estimate(value + influence, value, w)


def dr(
    logs: LoggedSlates,
    target: np.ndarray,
    reward_hat: np.ndarray,
    direct: np.ndarray,
    *,
    switch_tau: float | None = None,
) -> Estimate:
    """Doubly robust (``switch_tau``: Switch-DR); see the module docstring.

    Args:
        target: ``(S, K)`` target probabilities of the logged items.
        reward_hat: ``(S, K)`` reward model at the logged item and position.
        direct: ``(S, K)`` direct-method value of the target at each position.
        switch_tau: weight threshold of Switch-DR (``None``: plain DR).
    """
    w = _weights(logs, target)
    rh = np.asarray(reward_hat, dtype=np.float64)
    d = np.asarray(direct, dtype=np.float64)
    if rh.shape != w.shape or d.shape != w.shape:
        raise ConfigError("reward_hat and direct must be (S, K)")
    keep = np.ones_like(w, dtype=bool) if switch_tau is None else w <= switch_tau
    if switch_tau is not None and switch_tau <= 0:
        raise ConfigError("switch_tau must be positive")
    corr = np.where(keep, w * (logs.rewards - rh), 0.0)
    terms = np.where(logs.mask, d + corr, 0.0).sum(axis=1)
    return _estimate(terms, float(terms.mean()) if logs.n else 0.0, w)


def switch_dr(
    logs: LoggedSlates,
    target: np.ndarray,
    reward_hat: np.ndarray,
    direct: np.ndarray,
    *,
    tau: float,
) -> Estimate:
    """Switch-DR (Wang, Agarwal & Dudík, ICML 2017) with threshold ``tau``."""
    return dr(logs, target, reward_hat, direct, switch_tau=tau)


def all_estimates(
    logs: LoggedSlates,
    target: np.ndarray,
    reward_hat: np.ndarray,
    direct: np.ndarray,
    *,
    tau: float = 100.0,
) -> dict[str, Estimate]:
    """IPS, SNIPS, DR and Switch-DR of one target on one log."""
    return {
        "ips": ips(logs, target),
        "snips": snips(logs, target),
        "dr": dr(logs, target, reward_hat, direct),
        "switch_dr": switch_dr(logs, target, reward_hat, direct, tau=tau),
    }
