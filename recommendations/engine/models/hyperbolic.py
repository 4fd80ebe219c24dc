"""Hyperbolic recommender: item points on the Poincaré ball, distance scoring.

Sun, Cheng, Zhang, Chen, Zhao, Hua & Ng, "HGCF: Hyperbolic Graph
Convolution Networks for Collaborative Filtering", WWW 2021; Vinh Tran, Tay,
Zhang, Cong & Luu, "HyperML: A Boosting Metric Learning Approach in
Hyperbolic Space for Recommender Systems", WSDM 2020; Riemannian optimisation
as in Bécigneul & Ganea, "Riemannian Adaptive Optimization Methods", ICLR 2019
(geoopt's ``RiemannianAdam``).

Items are points ``e_i`` on the Poincaré ball of curvature ``-c``
(``geoopt.ManifoldParameter``); a user is the point
``u = expmap0(sum_j w_j logmap0(e_j))``, the tangent-space (at the origin)
weighted mean of the history items' points -- HGCF's aggregation in the
tangent space, one hop. The score of item ``i`` is ``-d_c(u, e_i)``, the
negative geodesic distance, so a new event moves the user without retraining
and unknown users are folded in exactly the way training users are.

Departures from the papers:

- no user parameters: the user is always aggregated from the history (HGCF
  also learns a user point and stacks several hyperbolic GCN layers);
- loss: softmax cross-entropy over the whole catalog on ``-d / temperature``
  (the target item left out of its own user's aggregate), instead of HGCF's
  margin ranking loss with sampled negatives;
- ``history_decay`` (inference only, as in ``lightgcn``) weights the j-th
  most recent item by ``exp(-decay j)``; ``None`` picks it on validation.

Serving with FAISS: the score is monotone in neither the inner product nor
the Euclidean distance of the ball coordinates, so an ANN index cannot rank
exactly. The plan (serving issue): index the tangent vectors
``logmap0(e_i)`` in a FAISS L2 index, retrieve a generous candidate set (e.g.
500) for ``logmap0(u)``, and re-score the candidates exactly with
:func:`poincare_distance`. The recall of that candidate stage is not yet
measured.

Same-second events (issue 19): training is order-free (user points are
history averages); the recency weights ``exp(-decay * age)`` count age in
events, so inside a same-second burst they follow the container's seeded
random order (``recommendations.engine.data.ordering``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import geoopt
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from recommendations.engine.data.interactions import History, Interactions
from recommendations.engine.data.splits import EvalTask
from recommendations.engine.evaluation.evaluator import select_on_validation
from recommendations.engine.models.base import ModelConfig
from recommendations.engine.models.torch_base import TorchRecommender
from recommendations.engine.onnx.export import export_module
from recommendations.engine.onnx.feeds import hyperbolic_weights
from recommendations.engine.onnx.inputs import OnnxFeeds

logger = logging.getLogger(__name__)

EPS = 1e-7  # floor of each conformal factor 1 - c|x|^2


class HyperbolicConfig(ModelConfig):
    dim: int = Field(64, ge=2)
    """Dimension D of the ball."""
    curvature: float = Field(1.0, gt=0)
    """c: the ball has curvature -c and radius 1 / sqrt(c)."""
    init_scale: float = Field(0.1, gt=0)
    """Std of the tangent vectors mapped to the initial points."""
    temperature: float = Field(0.3, gt=0)
    """Softmax temperature on the negative distances."""
    lr: float = Field(0.02, gt=0)
    """RiemannianAdam learning rate."""
    batch_size: int = Field(1024, ge=1)
    """(user, item) pairs per step."""
    history_decay: float | None = Field(0.0, ge=0)
    """Weight of the j-th most recent item ~ exp(-decay j) when scoring; 0 =
    uniform; ``None`` picks it from ``history_decay_grid`` on validation."""
    history_decay_grid: tuple[float, ...] = (0.0, 0.03, 0.1, 0.3, 1.0)
    """Candidates tried when ``history_decay`` is ``None``."""

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"history_decay": None},
        "full": {"history_decay": None, "dim": 128},
    }
    TRAINER_PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"max_epochs": 100, "patience": 5, "eval_every": 2},
        "full": {"max_epochs": 300, "patience": 10, "eval_every": 2},
    }


def poincare_distance(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """All-pairs geodesic distance ``(B, D) x (N, D) -> (B, N)`` on the ball.

    ``d = arcosh(1 + 2c |x - y|^2 / ((1 - c|x|^2)(1 - c|y|^2))) / sqrt(c)``,
    with ``|x - y|^2`` expanded so it is one matrix product.
    """
    x2 = x.pow(2).sum(-1, keepdim=True)  # (B, 1)
    y2 = y.pow(2).sum(-1)[None, :]  # (1, N)
    diff2 = (x2 + y2 - 2.0 * x @ y.T).clamp_min(0.0)  # (B, N)
    denom = (1 - c * x2).clamp_min(EPS) * (1 - c * y2).clamp_min(EPS)
    arg = 1.0 + 2.0 * c * diff2 / denom
    dist: torch.Tensor = torch.acosh(arg.clamp_min(1.0 + 1e-7)) / c**0.5
    return dist


class HyperbolicNet(nn.Module):
    def __init__(self, n_items: int, cfg: HyperbolicConfig) -> None:
        super().__init__()
        self.ball = geoopt.PoincareBall(c=cfg.curvature)
        tangent = torch.randn(n_items, cfg.dim) * cfg.init_scale  # (N, D)
        self.items = geoopt.ManifoldParameter(
            self.ball.expmap0(tangent), manifold=self.ball
        )

    def users(self, weights: torch.Tensor) -> torch.Tensor:
        """Row-stochastic history weights ``(B, N)`` -> user points ``(B, D)``."""
        tangent = weights @ self.ball.logmap0(self.items)  # (B, D)
        users: torch.Tensor = self.ball.expmap0(tangent)  # geoopt is untyped
        return users


class Hyperbolic(TorchRecommender[HyperbolicNet]):
    name: ClassVar[str] = "hyperbolic"
    Config = HyperbolicConfig
    config: HyperbolicConfig

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.decay = self.config.history_decay or 0.0
        self.fit_info: dict[str, Any] = {}

    def build_net(self) -> HyperbolicNet:
        return HyperbolicNet(self.n_items, self.config)

    # -------------------------------------------------------------- training
    def setup(self, train: Interactions, seed: int) -> None:
        cfg: HyperbolicConfig = self.config
        self.net = self.build_net().to(self.torch_device)
        self.optimizer = geoopt.optim.RiemannianAdam(self.net.parameters(), lr=cfg.lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.matrix = train.matrix()  # (U, N) binary
        coo = self.matrix.tocoo()
        keep = np.diff(self.matrix.indptr)[coo.row] >= 2  # the target leaves >= 1
        self.pairs_u = coo.row[keep].astype(np.int64)
        self.pairs_i = coo.col[keep].astype(np.int64)

    def train_epoch(self, epoch: int) -> float:
        cfg: HyperbolicConfig = self.config
        net = self._require_net()
        net.train()
        optimizer = self._require_optimizer()
        device = self.torch_device
        order = torch.randperm(len(self.pairs_u), generator=self.generator).numpy()
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            u, i = self.pairs_u[idx], self.pairs_i[idx]
            hist = torch.from_numpy(self.matrix[u].toarray()).to(device)  # (B, N)
            target = torch.from_numpy(i).to(device)  # (B,)
            hist[torch.arange(len(i)), target] = 0.0  # leave the target out
            weights = hist / hist.sum(-1, keepdim=True)
            users = net.users(weights)  # (B, D)
            logits = -poincare_distance(users, net.items, cfg.curvature)  # (B, N)
            loss = F.cross_entropy(logits / cfg.temperature, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        return total / max(len(order), 1)

    def _set_decay(self, decay: float) -> None:
        self.decay = decay

    def finish(self, valid: EvalTask | None) -> None:
        """Pick ``history_decay`` on validation when it is ``None``."""
        cfg: HyperbolicConfig = self.config
        if cfg.history_decay is not None or valid is None or not len(valid):
            self.decay = cfg.history_decay or 0.0
            return
        self.decay, results = select_on_validation(
            self, valid, cfg.history_decay_grid, self._set_decay
        )
        self.fit_info = {"history_decay": self.decay, "decay_grid_valid": results}
        logger.info("hyperbolic history_decay %.3f (valid %s)", self.decay, results)

    # --------------------------------------------------------------- scoring
    def history_weights(self, histories: list[History]) -> np.ndarray:
        """Row-stochastic ``(B, N)`` weights of the history items (0 if empty)."""
        return hyperbolic_weights(histories, self.n_items, self.decay)

    def _score(self, histories: list[History]) -> np.ndarray:
        net = self._require_net()
        net.eval()
        weights = torch.from_numpy(self.history_weights(histories))
        with torch.no_grad():
            users = net.users(weights.to(self.torch_device))  # (B, D)
            dist = poincare_distance(users, net.items, self.config.curvature)
        return (-dist).float().cpu().numpy()

    def item_embeddings(self) -> np.ndarray | None:
        """Item points on the ball ``(N, D)`` (use ``logmap0`` for a flat space)."""
        points: np.ndarray = self._require_net().items.detach().cpu().numpy()
        return points.copy()

    # -------------------------------------------------------------- state
    def get_state(self) -> dict[str, np.ndarray]:
        state = super().get_state()
        state["_decay"] = np.array(self.decay, dtype=np.float64)
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        super().set_state({k: v for k, v in state.items() if not k.startswith("_")})
        if "_decay" in state:
            self.decay = float(state["_decay"])

    # ------------------------------------------------------------------ onnx
    def export_onnx(self, path: str | Path) -> Path:
        """Export ``weights (B, N) -> scores (B, N)``: tangent-space aggregation,
        ``expmap0`` and the negative Poincaré distance to every item.

        The item points and their ``logmap0`` are constants of the graph; the
        history weights (recency decay) come from :meth:`onnx_feeds`. Batch is
        a dynamic axis.
        """
        return export_module(
            self,
            _HyperbolicScores(self._require_net(), self.config.curvature),
            (torch.full((2, self.n_items), 1.0 / self.n_items),),
            path,
            input_names=("weights",),
            dynamic_axes={"weights": {0: "batch"}},
        )

    def onnx_feeds(
        self, histories: list[History], candidates: np.ndarray | None
    ) -> OnnxFeeds:
        """Row-stochastic history weights ``(B, N)`` (:meth:`history_weights`)."""
        return OnnxFeeds({"weights": self.history_weights(histories)})


class _HyperbolicScores(nn.Module):
    """The exported graph: user point from the weights, ``-d_c(user, item)``."""

    items: torch.Tensor  # buffers
    tangent: torch.Tensor
    k_sqrt: torch.Tensor
    max_norm: torch.Tensor

    def __init__(self, net: HyperbolicNet, curvature: float) -> None:
        super().__init__()
        self.curvature = curvature
        with torch.no_grad():
            items = net.items.detach().clone()
            self.register_buffer("items", items)  # (N, D)
            self.register_buffer("tangent", net.ball.logmap0(items))  # (N, D)
            # geoopt's sqrt|k| (k = -c) and its float32 projection radius
            k_sqrt = (net.ball.k.detach().abs() + 1e-15).sqrt()
            self.register_buffer("k_sqrt", k_sqrt)
            self.register_buffer("max_norm", (1 - 4e-3) / k_sqrt)

    def expmap0(self, u: torch.Tensor) -> torch.Tensor:
        """``PoincareBall.expmap0`` (with its projection) for curvature ``-c < 0``,
        written out: geoopt's version branches on ``isclose(k, 0)``, which the
        exporter cannot translate."""
        u_norm = u.norm(dim=-1, p=2, keepdim=True).clamp_min(1e-15)
        scaled = (u_norm * self.k_sqrt).clamp(-15, 15).tanh()
        x = self.k_sqrt.reciprocal() * scaled * (u / u_norm)
        norm = x.norm(dim=-1, p=2, keepdim=True).clamp_min(1e-15)
        return torch.where(norm > self.max_norm, x / norm * self.max_norm, x)

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        users = self.expmap0(weights @ self.tangent)  # (B, D)
        return -poincare_distance(users, self.items, self.curvature)  # (B, N)
