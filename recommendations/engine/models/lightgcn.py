"""LightGCN: simplified graph convolution for collaborative filtering.

He, Deng, Wang, Li, Zhang & Wang, "LightGCN: Simplifying and Powering Graph
Convolution Network for Recommendation", SIGIR 2020.

Parameter-free propagation over the symmetrically normalised user-item
graph, ``E^(k+1) = D^-1/2 A D^-1/2 E^(k)``, final embeddings the mean of
layers ``0..K``; score = dot product. Trained either with BPR (as in the
paper) or with a softmax cross-entropy over the whole catalog (``softmax``;
sampled/full softmax losses beat BPR, cf. Wu et al., "On the Effectiveness
of Sampled Softmax Loss for Item Recommendation", TOIS 2024).

Scoring from the current history (fold-in): a user's layer ``k+1`` is
``sum_{i in H} e_i^(k) / sqrt(|H| d_i)``, exactly what propagation gives a
training user with history ``H``; the user's own layer-0 vector is used
when ``History.user`` is a training user and is zero for a new user.
Departure from the paper, inference only: ``history_decay`` weights the
j-th most recent history item by ``exp(-decay j)`` in the fold-in (0 = the
paper). The ``quick``/``full`` profiles pick it on validation NDCG@10 after
training (``history_decay=None``); on ML-100K's temporal leave-one-out this is
worth +50 % validation NDCG@10, because the next item depends on recent ones.
The j-th most recent item counts events, so inside a same-second burst the
decay follows the container's seeded random order (issue 19,
``recommendations.engine.data.ordering``); training itself is order-free.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
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
from recommendations.engine.onnx.feeds import lightgcn_feeds, lightgcn_fold_in
from recommendations.engine.onnx.inputs import OnnxFeeds

logger = logging.getLogger(__name__)


class LightGCNConfig(ModelConfig):
    dim: int = Field(64, ge=2)
    """Embedding size D."""
    layers: int = Field(3, ge=0, le=8)
    """Propagation layers K."""
    loss: Literal["softmax", "bpr"] = "softmax"
    """``softmax``: cross-entropy over every item; ``bpr``: one sampled negative."""
    temperature: float = Field(0.2, gt=0)
    """Softmax temperature (``softmax`` loss on cosine scores only)."""
    cosine: bool = True
    """Train and score on L2-normalised final embeddings (softmax loss)."""
    lr: float = Field(5e-3, gt=0)
    """Adam learning rate."""
    l2: float = Field(1e-4, ge=0)
    """L2 penalty on the layer-0 embeddings of each batch."""
    batch_size: int = Field(4096, ge=1)
    """(user, item) pairs per step."""
    history_decay: float | None = Field(0.0, ge=0)
    """Fold-in weight of the j-th most recent item ~ exp(-decay j); 0 = paper;
    ``None`` picks it from ``history_decay_grid`` on validation after training."""
    history_decay_grid: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
    """Candidates tried when ``history_decay`` is ``None``."""

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"history_decay": None},
        "full": {"history_decay": None},
    }
    TRAINER_PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"max_epochs": 100, "patience": 5, "eval_every": 2},
        "full": {"max_epochs": 300, "patience": 10, "eval_every": 2},
    }


def normalized_adjacency(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """``D^-1/2 A D^-1/2`` of the bipartite graph, ``(U + N, U + N)``."""
    n_users, n_items = matrix.shape
    adj = sp.bmat([[None, matrix], [matrix.T, None]], format="csr").astype(np.float32)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    inv = np.zeros_like(deg, dtype=np.float32)
    np.power(deg, -0.5, out=inv, where=deg > 0)
    return sp.diags(inv) @ adj @ sp.diags(inv)


def to_torch_sparse(m: sp.csr_matrix) -> torch.Tensor:
    coo = m.tocoo()
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data)
    return torch.sparse_coo_tensor(
        idx, values, m.shape, check_invariants=False
    ).coalesce()


class _ScipySpMM(torch.autograd.Function):
    """``A @ x`` for a symmetric scipy matrix ``A`` (so the gradient is ``A @ g``).

    On CPU, scipy's CSR product is several times faster than torch.sparse here.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, adj: sp.csr_matrix) -> torch.Tensor:
        ctx.adj = adj
        return torch.from_numpy(np.asarray(adj @ x.detach().numpy()))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return torch.from_numpy(np.asarray(ctx.adj @ grad.numpy())), None


class Adjacency:
    """The normalised graph, multiplied with scipy on CPU and torch on GPU."""

    def __init__(self, adj: sp.csr_matrix, device: torch.device) -> None:
        self.device = device
        self.scipy = adj.astype(np.float32).tocsr()
        self.torch = (
            to_torch_sparse(self.scipy).to(device) if device.type != "cpu" else None
        )

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor
        if self.torch is not None:
            out = torch.sparse.mm(self.torch, x)
        else:
            out = _ScipySpMM.apply(x, self.scipy)  # type: ignore[no-untyped-call]  # torch: apply is unannotated
        return out


class LightGCNNet(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.user_emb = nn.Embedding(n_users, dim)
        self.item_emb = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user_emb.weight, std=0.1)
        nn.init.normal_(self.item_emb.weight, std=0.1)

    def propagate(self, adj: Adjacency, layers: int) -> list[torch.Tensor]:
        """Layer embeddings ``[E^(0), ..., E^(K)]``, each ``(U + N, D)``."""
        x = torch.cat([self.user_emb.weight, self.item_emb.weight])  # (U + N, D)
        out = [x]
        for _ in range(layers):
            x = adj @ x
            out.append(x)
        return out


class LightGCN(TorchRecommender[LightGCNNet]):
    name: ClassVar[str] = "lightgcn"
    Config = LightGCNConfig
    config: LightGCNConfig

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.item_layers: torch.Tensor | None = None  # (K + 1, N, D) after training
        self.item_degree: np.ndarray | None = None  # (N,)
        self.decay = self.config.history_decay or 0.0
        self.fit_info: dict[str, Any] = {}

    def build_net(self) -> LightGCNNet:
        return LightGCNNet(self.n_users, self.n_items, self.config.dim)

    # -------------------------------------------------------------- training
    def setup(self, train: Interactions, seed: int) -> None:
        cfg: LightGCNConfig = self.config
        device = self.torch_device
        self.net = self.build_net().to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.generator = torch.Generator().manual_seed(seed)
        matrix = train.matrix().tocoo()
        self.adj = Adjacency(normalized_adjacency(matrix.tocsr()), device)
        self.pairs_u = torch.from_numpy(matrix.row.astype(np.int64))
        self.pairs_i = torch.from_numpy(matrix.col.astype(np.int64))
        self.item_degree = (
            np.asarray(matrix.tocsr().sum(axis=0)).ravel().astype(np.float32)
        )
        self.item_layers = None

    def _final(self) -> tuple[torch.Tensor, torch.Tensor]:
        layers = self._require_net().propagate(self.adj, self.config.layers)
        final = torch.stack(layers).mean(dim=0)  # (U + N, D)
        return final[: self.n_users], final[self.n_users :]

    def train_epoch(self, epoch: int) -> float:
        cfg: LightGCNConfig = self.config
        net = self._require_net()
        net.train()
        optimizer = self._require_optimizer()
        self.item_layers = None
        device = self.torch_device
        order = torch.randperm(len(self.pairs_u), generator=self.generator)
        total, count = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            u, i = self.pairs_u[idx].to(device), self.pairs_i[idx].to(device)
            users, items = self._final()  # (U, D), (N, D)
            if cfg.loss == "softmax":
                uu = users[u]  # (B, D)
                if cfg.cosine:
                    logits = F.normalize(uu, dim=-1) @ F.normalize(items, dim=-1).T
                    logits = logits / cfg.temperature  # (B, N)
                else:
                    logits = uu @ items.T
                loss = F.cross_entropy(logits, i)
            else:
                j = torch.randint(
                    0, self.n_items, (len(idx),), generator=self.generator
                )
                j = j.to(device)
                pos = (users[u] * items[i]).sum(-1)
                neg = (users[u] * items[j]).sum(-1)
                loss = -F.logsigmoid(pos - neg).mean()
            reg = net.user_emb(u).pow(2).sum() + net.item_emb(i).pow(2).sum()
            loss = loss + cfg.l2 * reg / len(idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        return total / max(count, 1)

    def _set_decay(self, decay: float) -> None:
        self.decay = decay

    def finish(self, valid: EvalTask | None) -> None:
        """After training: pick ``history_decay`` on validation when asked to."""
        cfg: LightGCNConfig = self.config
        if cfg.history_decay is not None or valid is None or not len(valid):
            self.decay = cfg.history_decay or 0.0
            return
        self.decay, results = select_on_validation(
            self, valid, cfg.history_decay_grid, self._set_decay
        )
        self.fit_info = {
            "history_decay": self.decay,
            "decay_grid_valid_ndcg@10": results,
        }
        logger.info("lightgcn history_decay %.3f (valid %s)", self.decay, results)

    # --------------------------------------------------------------- scoring
    def _ensure_item_layers(self) -> torch.Tensor:
        """Cache the item layer embeddings ``(K + 1, N, D)`` of the training graph."""
        if self.item_layers is None:
            net = self._require_net()
            with torch.no_grad():
                layers = net.propagate(self.adj, self.config.layers)
            self.item_layers = torch.stack([x[self.n_users :] for x in layers])
        return self.item_layers

    def _fold_in_weights(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fold-in items and weights ``w_i = 1 / sqrt(|H| d_i)`` of one history,
        recency-decayed (same total mass) when ``decay`` > 0."""
        return lightgcn_fold_in(history, self._fitted(self.item_degree), self.decay)

    def _score(self, histories: list[History]) -> np.ndarray:
        cfg: LightGCNConfig = self.config
        net = self._require_net()
        net.eval()
        item_layers = self._ensure_item_layers()  # (K + 1, N, D)
        device = item_layers.device
        n_hist = len(histories)
        # Fold-in weights: (B, N) sparse matrix w_ui = 1 / sqrt(|H| d_i)
        rows, cols, vals = [], [], []
        for r, h in enumerate(histories):
            fold_items, w = self._fold_in_weights(h.items)
            if not len(fold_items):
                continue
            rows.append(np.full(len(fold_items), r))
            cols.append(fold_items)
            vals.append(w)
        fold = sp.csr_matrix(
            (np.concatenate(vals) if vals else np.zeros(0),
             (np.concatenate(rows) if rows else np.zeros(0, np.int64),
              np.concatenate(cols) if cols else np.zeros(0, np.int64))),
            shape=(n_hist, self.n_items), dtype=np.float32,
        )  # fmt: skip
        fold_t = torch.from_numpy(fold.toarray()).to(device)  # (B, N)
        with torch.no_grad():
            ego = torch.zeros(n_hist, cfg.dim, device=device)
            known = [
                r
                for r, h in enumerate(histories)
                if h.user is not None and 0 <= h.user < self.n_users
            ]
            if known:
                ids = torch.tensor([histories[r].user for r in known], device=device)
                ego[known] = net.user_emb.weight[ids]
            user_layers = [ego] + [fold_t @ item_layers[k] for k in range(cfg.layers)]
            users = torch.stack(user_layers).mean(dim=0)  # (B, D)
            items = item_layers.mean(dim=0)  # (N, D)
            if cfg.cosine and cfg.loss == "softmax":
                users, items = F.normalize(users, dim=-1), F.normalize(items, dim=-1)
            scores = users @ items.T  # (B, N)
        return scores.cpu().numpy()

    def item_embeddings(self) -> np.ndarray | None:
        return self._ensure_item_layers().mean(dim=0).cpu().numpy()

    # -------------------------------------------------------------- state
    def get_state(self) -> dict[str, np.ndarray]:
        state = super().get_state()
        state["_item_layers"] = self._ensure_item_layers().cpu().numpy().copy()
        state["_item_degree"] = self._fitted(self.item_degree).copy()
        state["_decay"] = np.array(self.decay, dtype=np.float64)
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        params = {k: v for k, v in state.items() if not k.startswith("_")}
        super().set_state(params)
        self.item_layers = torch.from_numpy(np.asarray(state["_item_layers"])).to(
            self.torch_device
        )
        self.item_degree = np.asarray(state["_item_degree"], dtype=np.float32)
        if "_decay" in state:
            self.decay = float(state["_decay"])

    def after_state_change(self) -> None:
        self.item_layers = None

    # ------------------------------------------------------------------ onnx
    def export_onnx(self, path: str | Path) -> Path:
        """Export ``fold (B, N), ego (B, D) -> scores (B, N)``.

        The graph holds the propagated item layers of the training graph as
        constants; the fold-in weights and the known users' layer-0 vectors
        are built in numpy by :meth:`onnx_feeds`. Batch is a dynamic axis.
        """
        cfg: LightGCNConfig = self.config
        self._require_net()
        module = _LightGCNScores(
            self._ensure_item_layers().detach().cpu(),
            cfg.layers,
            normalize=cfg.cosine and cfg.loss == "softmax",
        )
        example = (torch.zeros(2, self.n_items), torch.zeros(2, cfg.dim))
        return export_module(
            self,
            module,
            example,
            path,
            input_names=("fold", "ego"),
            dynamic_axes={"fold": {0: "batch"}, "ego": {0: "batch"}},
        )

    def onnx_feeds(
        self, histories: list[History], candidates: np.ndarray | None
    ) -> OnnxFeeds:
        """Fold-in weights ``(B, N)`` and layer-0 user vectors ``(B, D)``, as in
        :meth:`_score` (the layer-0 vector is zero for a user not in training)."""
        net = self._require_net()
        return lightgcn_feeds(
            histories,
            n_items=self.n_items,
            item_degree=self._fitted(self.item_degree),
            decay=self.decay,
            user_table=net.user_emb.weight.detach().cpu().numpy()[: self.n_users],
        )


class _LightGCNScores(nn.Module):
    """The exported graph: fold-in propagation and (cosine) dot products."""

    fold_layers: torch.Tensor  # buffer (K, N, D)
    items_t: torch.Tensor  # buffer (D, N)

    def __init__(self, item_layers: torch.Tensor, layers: int, normalize: bool) -> None:
        super().__init__()
        self.layers, self.normalize = layers, normalize
        self.register_buffer("fold_layers", item_layers[:layers].clone())  # (K, N, D)
        items = item_layers.mean(dim=0)  # (N, D)
        if normalize:
            items = F.normalize(items, dim=-1)
        self.register_buffer("items_t", items.T.contiguous())  # (D, N)

    def forward(self, fold: torch.Tensor, ego: torch.Tensor) -> torch.Tensor:
        user_layers = [ego] + [fold @ self.fold_layers[k] for k in range(self.layers)]
        users = torch.stack(user_layers).mean(dim=0)  # (B, D)
        if self.normalize:
            users = F.normalize(users, dim=-1)
        return users @ self.items_t  # (B, N)
