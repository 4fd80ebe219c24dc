"""A simulator that closes the loop offline: users, slates, position-biased clicks.

**Click model**: the position-based model (Craswell, Zoeter, Taylor &
Ramsey, WSDM 2008; as used for unbiased learning to rank by Joachims, Swaminathan
& Schnabel, WSDM 2017): a user examines position ``k`` (0-based) with
probability ``theta_k = (1 / (k + 1)) ** eta`` and clicks an examined item
with its attraction ``alpha(u, i)``; ``P(click) = theta_k alpha(u, i)``,
independently per position. The true value of a slate is therefore
``sum_k theta_k alpha(u, a_k)`` (exact, no sampling needed).

**Users**:

- :func:`synthetic_click_model`: the planted structure of
  :mod:`recommendations.engine.data.synthetic` (the generator the tests
  use) is the truth: attraction is high in the user's home cluster, medium
  in the drift cluster, low elsewhere, scaled by the item's planted
  popularity weight inside its cluster.
- :func:`fitted_click_model`: a model fitted to a real log (ML-100K): a
  rank-``factors`` truncated SVD of the binary user-item matrix gives each
  user-item affinity; attraction is a logistic function of its z-score
  (clipped to [-3, 3]: the SVD's heavy upper tail would otherwise make a few
  items near-certain clicks), calibrated to a target mean click rate.

**Members** (what the policies blend, standing in for the ensemble's
models): ``truth`` plus noise (a good model), ``popularity`` and
``noise`` (a bad one). A *policy* is a weight vector on them; the served
slate is the top ``K`` of the blend over the request's candidates, which are
the top ``M`` of a fixed retrieval score (shared by every policy, as the
serving pipeline's retrieval is), optionally perturbed by exploration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from recommendations.engine.bandits.blend import SlateBatch
from recommendations.engine.bandits.exploration import ExplorationConfig, explore
from recommendations.engine.data.interactions import Interactions
from recommendations.engine.data.synthetic import SyntheticData


def position_bias(k: int, eta: float = 1.0) -> np.ndarray:
    """``(k,)`` examination probabilities ``(1 / (pos + 1)) ** eta``."""
    out: np.ndarray = (1.0 / np.arange(1, k + 1)) ** eta
    return out


@dataclass(frozen=True)
class ClickModel:
    attraction: np.ndarray  # (U, I) P(click | examined)
    examination: np.ndarray  # (K,)

    def expected(self, user: int, items: np.ndarray) -> float:
        k = len(items)
        return float((self.examination[:k] * self.attraction[user, items]).sum())

    def clicks(
        self, user: int, items: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        k = len(items)
        p = self.examination[:k] * self.attraction[user, items]
        out: np.ndarray = (rng.random(k) < p).astype(np.float64)
        return out


def synthetic_click_model(
    data: SyntheticData, *, k: int = 10, eta: float = 1.0, ceiling: float = 0.5
) -> ClickModel:
    """Attraction from the generator's planted clusters and popularity."""
    t = data.truth
    home = t.item_cluster[None, :] == t.user_cluster[:, None]
    drift = t.item_cluster[None, :] == t.user_drift_cluster[:, None]
    level = np.where(home, 1.0, np.where(drift, 0.5, 0.05))
    weight = t.item_weight / t.item_weight.max()
    attraction = ceiling * level * (0.3 + 0.7 * weight[None, :])
    return ClickModel(attraction, position_bias(k, eta))


def fitted_click_model(
    data: Interactions,
    *,
    factors: int = 32,
    k: int = 10,
    eta: float = 1.0,
    mean_ctr: float = 0.05,
    slope: float = 1.0,
    seed: int = 0,
) -> ClickModel:
    """Attraction from a truncated SVD of the user-item matrix (e.g. ML-100K)."""
    x = sp.csr_matrix(data.matrix(), dtype=np.float64)
    x.data[:] = 1.0
    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal(min(x.shape))
    u, s, vt = svds(x, k=min(factors, min(x.shape) - 1), v0=v0)
    affinity = (u * s) @ vt
    z = np.clip((affinity - affinity.mean()) / affinity.std(), -3.0, 3.0)
    lo, hi = -20.0, 5.0  # bisect the intercept to hit mean_ctr
    for _ in range(60):
        mid = (lo + hi) / 2
        if (1 / (1 + np.exp(-(mid + slope * z)))).mean() > mean_ctr:
            hi = mid
        else:
            lo = mid
    attraction = 1 / (1 + np.exp(-(lo + slope * z)))
    return ClickModel(attraction, position_bias(k, eta))


@dataclass
class Simulator:
    """Users, candidates and member scores over one click model."""

    model: ClickModel
    members: dict[str, np.ndarray]  # name -> (U, I) scores
    n_candidates: int = 50
    slate_size: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        u, i = self.model.attraction.shape
        names = tuple(self.members)
        self.names = names
        stacked = np.stack([self.members[n] for n in names], axis=-1)  # (U, I, D)
        z = (stacked - stacked.mean(1, keepdims=True)) / (
            stacked.std(1, keepdims=True) + 1e-12
        )
        retrieval = z.mean(axis=-1)  # equal-weight blend: shared by every policy
        m = min(self.n_candidates, i)
        self.candidates = np.argsort(-retrieval, axis=1)[:, :m]  # (U, M)
        rows = np.arange(u)[:, None]
        self.candidate_scores = stacked[rows, self.candidates]  # (U, M, D)
        cz = self.candidate_scores
        self.candidate_z = (cz - cz.mean(1, keepdims=True)) / (
            cz.std(1, keepdims=True) + 1e-12
        )
        self.n_users = u

    @classmethod
    def with_members(
        cls,
        model: ClickModel,
        *,
        noise: float = 0.5,
        popularity: np.ndarray | None = None,
        seed: int = 0,
        **kwargs: int,
    ) -> Simulator:
        """Members: ``truth`` (attraction + Gaussian noise of ``noise`` sd, in
        attraction z units), ``popularity`` (given, or the mean attraction)
        and ``noise`` (pure noise)."""
        rng = np.random.default_rng(seed)
        a = model.attraction
        za = (a - a.mean()) / a.std()
        pop = a.mean(axis=0) if popularity is None else np.asarray(popularity, float)
        members = {
            "truth": za + noise * rng.standard_normal(a.shape),
            "popularity": np.broadcast_to(pop[None, :], a.shape).copy(),
            "noise": rng.standard_normal(a.shape),
        }
        return cls(model, members, seed=seed, **kwargs)

    # --------------------------------------------------------------- serving
    def greedy(self, user: int, weights: np.ndarray) -> np.ndarray:
        """Candidate indices of the blend's top ``K`` for ``user``."""
        blend = self.candidate_z[user] @ np.asarray(weights, dtype=np.float64)
        top: np.ndarray = np.argsort(-blend, kind="stable")[: self.slate_size]
        return top

    def serve(
        self,
        user: int,
        weights: np.ndarray,
        exploration: ExplorationConfig,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(candidate indices shown, their propensities)."""
        blend = self.candidate_z[user] @ np.asarray(weights, dtype=np.float64)
        greedy = np.argsort(-blend, kind="stable")[: self.slate_size]
        # the Thompson posterior is centred on the min-max scaled blend, as the
        # reranker's scores are
        span = blend.max() - blend.min()
        scaled = (blend - blend.min()) / span if span > 0 else np.ones_like(blend)
        slate = explore(exploration, scaled, greedy, rng)
        return slate.picked, slate.propensities

    def true_value(self, weights: np.ndarray, users: np.ndarray | None = None) -> float:
        """Exact expected clicks per slate of the deterministic blend policy,
        users uniform."""
        users = np.arange(self.n_users) if users is None else users
        total = 0.0
        for u in users:
            items = self.candidates[u, self.greedy(int(u), weights)]
            total += self.model.expected(int(u), items)
        return total / len(users)

    def on_policy(
        self,
        weights: np.ndarray,
        n_slates: int,
        rng: np.random.Generator,
        exploration: ExplorationConfig | None = None,
    ) -> float:
        """Clicks per slate measured by running the policy (Monte Carlo)."""
        cfg = exploration or ExplorationConfig()
        clicks = 0.0
        for u in rng.integers(0, self.n_users, n_slates):
            shown, _ = self.serve(int(u), weights, cfg, rng)
            clicks += self.model.clicks(int(u), self.candidates[u, shown], rng).sum()
        return clicks / n_slates

    def log(
        self,
        weights: np.ndarray,
        exploration: ExplorationConfig,
        n_slates: int,
        rng: np.random.Generator,
    ) -> tuple[SlateBatch, np.ndarray]:
        """Serve ``n_slates`` to uniformly drawn users; the log and the users."""
        users = rng.integers(0, self.n_users, n_slates)
        k = self.slate_size
        shown = np.full((n_slates, k), -1, dtype=np.int64)
        prop = np.ones((n_slates, k))
        rew = np.zeros((n_slates, k))
        for s, u in enumerate(users):
            picked, p = self.serve(int(u), weights, exploration, rng)
            n = len(picked)
            shown[s, :n], prop[s, :n] = picked, p
            rew[s, :n] = self.model.clicks(int(u), self.candidates[u, picked], rng)
        batch = SlateBatch(
            scores=self.candidate_scores[users],
            candidate_mask=np.ones(self.candidate_scores[users].shape[:2], bool),
            shown=shown,
            propensities=prop,
            rewards=rew,
            members=self.names,
        )
        return batch, users

    def ndcg_at_k(self, user: int, shown: np.ndarray) -> float:
        """NDCG@K of a served list, the attraction as graded relevance and
        the ideal list the ``K`` most attractive candidates."""
        rel = self.model.attraction[user, self.candidates[user]]
        k = len(shown)
        disc = 1.0 / np.log2(np.arange(2, k + 2))
        dcg = float((rel[shown] * disc).sum())
        ideal = float((np.sort(rel)[::-1][:k] * disc).sum())
        return dcg / ideal if ideal > 0 else 0.0
