"""KAN ranker: a Kolmogorov–Arnold network over (history, item) features.

Liu, Wang, Vaidya, Ruehle, Halverson, Soljačić, Hou & Tegmark, "KAN:
Kolmogorov–Arnold Networks", arXiv:2404.19756, 2024 (ICLR 2025).

Each KAN layer maps ``x (B, in) -> (B, out)`` with one learnable function
per edge, ``phi_oj(x) = w_b silu(x) + sum_c c_ojc B_c(x)``: a residual SiLU
base plus a B-spline of order ``spline_order`` on a grid of ``grid_size``
intervals (basis by the vectorised Cox–de Boor recursion). The grid is set
from the data's range before training (``update_grid``: a blend of the
data's quantiles and a uniform grid, coefficients refitted by least squares
so the function is kept) and can be refined to a finer grid the same way
(``refine``, the paper's grid extension).

The ranker scores (history, item) pairs from the features below, all
computed from the training data at ``setup`` (``FEATURES``, standardised):

- item: log-popularity, log-popularity in the last ``recent_fraction`` of
  the training time span, release year (missing -> mean);
- user: log history length (activity);
- user x item: genre affinity (the history's mean genre vector . the item's
  genres), |item year - mean history year|, time since the item was last
  and first seen in training at the user's "now" (the last history
  timestamp, else the end of training): the recency gap;
- similarity of the item to the history: item-item cosine co-occurrence
  (item-kNN with shrinkage, top ``neighbors`` per item) to the last item,
  to the ``recent`` last items (exponential weights) and to the whole
  history; cosine in a 32-d truncated-SVD item embedding of the
  co-occurrence matrix to the recent items; and the first-order transition
  frequency last item -> item (a Markov-chain feature).

Departures from the paper and the issue:

- "similarity in the other models' embedding spaces" is replaced by the
  self-contained co-occurrence / SVD / transition features above, so the
  ranker trains without the other models; an ensemble-stage ranker can add
  their scores as extra columns later.
- "people overlap" (directors / cast) is not a feature: the interactions
  container carries title / year / genres only.
- Training: sampled softmax (the next item vs ``negatives`` uniform items)
  over prefixes of each training sequence, not the paper's regression losses;
  no sparsity/entropy regularisation and no pruning.
- ``partial_fit`` (online learning) takes a few SGD steps of binary
  cross-entropy on new (history, item, label) events; only the KAN weights
  change, the feature tables stay as fitted. ``recommendations.engine.online``
  updates the tables incrementally (:meth:`KAN.replace_tables`) and drives
  :meth:`KAN.fit_features` with sampled negatives behind a guard rail.
- Feature importance: the mean |phi_oj(x_j)| of the first layer's edges on
  training samples, summed over outputs (the paper's edge L1 norm).
- Same-second events (issue 19): the transition table counts consecutive
  pairs of the training sequences, the training examples are (prefix, next
  item) of those sequences, and ``cooc_last`` / ``cooc_recent`` /
  ``svd_recent`` / ``transition_last`` read the last items of the history -
  all in the container's order, where a burst with one timestamp is in the
  seeded random order of ``recommendations.engine.data.ordering``. The recency
  features (days since last / first seen, recent popularity) use timestamps
  and do not depend on the order inside a burst.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from pydantic import Field
from scipy.sparse.linalg import svds
from torch import nn

from recommendations.engine.data.interactions import History, Interactions
from recommendations.engine.data.splits import EvalTask
from recommendations.engine.models.base import ModelConfig
from recommendations.engine.models.kan_features import FEATURES, KanFeatures
from recommendations.engine.models.torch_base import TorchRecommender
from recommendations.engine.onnx.export import export_module
from recommendations.engine.onnx.inputs import OnnxFeeds

logger = logging.getLogger(__name__)


class KANConfig(ModelConfig):
    hidden: tuple[int, ...] = (8,)
    """Widths of the hidden KAN layers (output width is 1)."""
    grid_size: int = Field(5, ge=1, le=100)
    """Grid intervals G of every edge's B-spline."""
    spline_order: int = Field(3, ge=1, le=5)
    """B-spline order k (3 = cubic)."""
    grid_eps: float = Field(0.02, ge=0.0, le=1.0)
    """Grid update: 1 = uniform over the data range, 0 = the data's quantiles."""
    recent: int = Field(5, ge=1)
    """Most recent history items used by the ``*_recent`` features."""
    recent_decay: float = Field(0.5, ge=0)
    """Weight of the j-th most recent item in those features ~ exp(-decay j)."""
    recent_fraction: float = Field(0.1, gt=0, le=1)
    """Share of the training time span counted as "recent" popularity."""
    neighbors: int = Field(100, ge=1)
    """Co-occurrence neighbours kept per item."""
    shrinkage: float = Field(10.0, ge=0)
    """Shrinkage of the co-occurrence cosine."""
    svd_dim: int = Field(32, ge=1)
    """Dimension of the SVD item embedding (capped at n_items - 1)."""
    negatives: int = Field(64, ge=1)
    """Uniform negatives per training example."""
    samples_per_epoch: int = Field(2048, ge=1)
    """(prefix, next item) examples drawn per epoch."""
    batch_size: int = Field(256, ge=1)
    """Examples per optimisation step."""
    lr: float = Field(5e-3, gt=0)
    """Adam learning rate."""
    weight_decay: float = Field(0.0, ge=0)
    """Adam weight decay."""
    online_lr: float = Field(0.05, gt=0)
    """SGD learning rate of :meth:`KAN.partial_fit`."""
    online_steps: int = Field(3, ge=1)
    """SGD steps per :meth:`KAN.partial_fit` call."""
    score_chunk: int = Field(32, ge=1)
    """Histories scored at once (rows = chunk x catalog)."""

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"samples_per_epoch": 10_000},
        "full": {"samples_per_epoch": 50_000, "hidden": (16,), "grid_size": 8},
    }
    TRAINER_PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"max_epochs": 30, "patience": 3},
        "full": {"max_epochs": 100, "patience": 6},
    }


# ------------------------------------------------------------------- KAN core
def b_spline_basis(x: torch.Tensor, grid: torch.Tensor, order: int) -> torch.Tensor:
    """B-spline bases by the Cox–de Boor recursion, vectorised.

    Args:
        x: ``(B, in)`` inputs.
        grid: ``(in, G + 2k + 1)`` knots per input (extended by ``k`` each side).
        order: spline order ``k``.

    Returns:
        ``(B, in, G + k)`` basis values; they sum to 1 inside ``[g_k, g_{G+k}]``.
    """
    x = x.unsqueeze(-1)  # (B, in, 1)
    bases = ((x >= grid[:, :-1]) & (x < grid[:, 1:])).to(x.dtype)  # (B, in, G+2k)
    for p in range(1, order + 1):
        left = (x - grid[:, : -(p + 1)]) / (grid[:, p:-1] - grid[:, : -(p + 1)])
        right = (grid[:, p + 1 :] - x) / (grid[:, p + 1 :] - grid[:, 1:-p])
        bases = left * bases[..., :-1] + right * bases[..., 1:]  # (B, in, G+2k-p)
    return bases


def uniform_grid(
    lo: torch.Tensor, hi: torch.Tensor, grid_size: int, order: int
) -> torch.Tensor:
    """``(in, G + 2k + 1)`` uniform knots over ``[lo, hi]`` per input."""
    step = (hi - lo) / grid_size  # (in,)
    ticks = torch.arange(-order, grid_size + order + 1, dtype=lo.dtype)
    return lo[:, None] + step[:, None] * ticks[None, :]


class KANLayer(nn.Module):
    """One KAN layer: ``y_o = sum_j w_b[o,j] silu(x_j) + spline_oj(x_j)``."""

    grid: torch.Tensor  # buffer (in, G + 2k + 1) knots

    def __init__(
        self, n_in: int, n_out: int, grid_size: int, order: int, grid_eps: float
    ) -> None:
        super().__init__()
        self.n_in, self.n_out, self.order, self.grid_eps = n_in, n_out, order, grid_eps
        ones = torch.ones(n_in)
        self.register_buffer("grid", uniform_grid(-ones, ones, grid_size, order))
        self.base_weight = nn.Parameter(torch.empty(n_out, n_in))
        nn.init.kaiming_uniform_(self.base_weight, a=5**0.5)
        self.spline_weight = nn.Parameter(
            torch.randn(n_out, n_in, grid_size + order) * 0.1 / n_in**0.5
        )  # (out, in, G + k)

    @property
    def grid_size(self) -> int:
        return self.grid.shape[1] - 2 * self.order - 1

    def edge_values(self, x: torch.Tensor) -> torch.Tensor:
        """Every edge function at its input: ``(B, in) -> (B, out, in)``."""
        basis = b_spline_basis(x, self.grid, self.order)  # (B, in, G + k)
        spline = torch.einsum("bic,oic->boi", basis, self.spline_weight)
        return self.base_weight[None] * F.silu(x)[:, None, :] + spline

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        basis = b_spline_basis(x, self.grid, self.order)  # (B, in, G + k)
        base = F.silu(x) @ self.base_weight.T  # (B, out)
        spline = basis.flatten(1) @ self.spline_weight.flatten(1).T  # (B, out)
        return base + spline

    @torch.no_grad()
    def update_grid(self, x: torch.Tensor, grid_size: int | None = None) -> None:
        """Fit the grid to the range of ``x`` (B, in), optionally to a new size.

        The spline part of every edge is refitted by least squares on ``x`` so
        the layer computes (nearly) the same function on the new grid; with a
        larger ``grid_size`` this is the paper's grid extension (refinement).
        """
        g = grid_size or self.grid_size
        k = self.order
        old = torch.einsum(
            "bic,oic->iob", b_spline_basis(x, self.grid, k), self.spline_weight
        )  # (in, out, B) spline values to keep
        xs = torch.sort(x, dim=0).values  # (B, in)
        idx = torch.linspace(0, len(xs) - 1, g + 1).round().long()
        adaptive = xs[idx].T  # (in, G + 1)
        lo, hi = xs[0], xs[-1]
        span = (hi - lo).clamp_min(1e-3)
        margin = 0.01 * span
        step = (span + 2 * margin) / g  # (in,)
        uniform = (lo - margin)[:, None] + step[:, None] * torch.arange(g + 1)[None]
        inner = self.grid_eps * uniform + (1 - self.grid_eps) * adaptive
        inner = torch.cummax(inner, dim=1).values
        ext = torch.arange(1, k + 1, dtype=x.dtype)[None] * step[:, None]  # (in, k)
        grid = torch.cat([inner[:, :1] - ext.flip(1), inner, inner[:, -1:] + ext], 1)
        basis = b_spline_basis(x, grid, k).permute(1, 0, 2)  # (in, B, G + k)
        # ridge-regularised least squares: bases empty of data stay at 0 and
        # the solution is unique (plain lstsq is not, on rank-deficient bases)
        gram = basis.transpose(1, 2) @ basis  # (in, G + k, G + k)
        eye = torch.eye(gram.shape[-1], dtype=x.dtype)[None]
        rhs = basis.transpose(1, 2) @ old.transpose(1, 2)  # (in, G + k, out)
        coef = torch.linalg.solve(gram + 1e-4 * len(x) ** 0.5 * eye, rhs)
        self.grid = grid
        self.spline_weight = nn.Parameter(coef.permute(2, 0, 1).contiguous())


class KANNet(nn.Module):
    def __init__(self, widths: Sequence[int], cfg: KANConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            KANLayer(a, b, cfg.grid_size, cfg.spline_order, cfg.grid_eps)
            for a, b in zip(widths, widths[1:], strict=False)
        )

    @property
    def kan_layers(self) -> list[KANLayer]:
        """``layers`` typed (iterating an ``nn.ModuleList`` gives plain modules)."""
        return cast("list[KANLayer]", list(self.layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x.squeeze(-1)  # (B,)

    @torch.no_grad()
    def update_grid(self, x: torch.Tensor, grid_size: int | None = None) -> None:
        for layer in self.kan_layers:
            layer.update_grid(x, grid_size)
            x = layer(x)


# ----------------------------------------------------------------- features
@dataclass
class OnlineBatch:
    """New events for :meth:`KAN.partial_fit`: ``label`` 1 = positive, 0 = negative."""

    histories: list[History]
    items: np.ndarray  # (B,)
    labels: np.ndarray  # (B,)


def _row_normalize(m: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(m.sum(axis=1)).ravel()
    inv = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return sp.diags(inv.astype(np.float32)) @ m


def _top_k_rows(m: np.ndarray, k: int) -> sp.csr_matrix:
    if k < m.shape[1]:
        cut = np.argpartition(-m, k - 1, axis=1)[:, k:]
        m = m.copy()
        np.put_along_axis(m, cut, 0.0, axis=1)
    out = sp.csr_matrix(m.astype(np.float32))
    out.eliminate_zeros()
    return out


class KAN(TorchRecommender[KANNet]):
    name: ClassVar[str] = "kan"
    Config = KANConfig
    config: KANConfig

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.tables: dict[str, np.ndarray] = {}
        self.fit_info: dict[str, Any] = {}
        self._sparse: dict[str, sp.csr_matrix] = {}

    def build_net(self) -> KANNet:
        cfg: KANConfig = self.config
        return KANNet([len(FEATURES), *cfg.hidden, 1], cfg)

    # ------------------------------------------------------- feature tables
    def _fit_tables(self, train: Interactions) -> None:
        cfg: KANConfig = self.config
        n = self.n_items
        x = train.matrix()  # (U, N)
        counts = np.asarray(x.sum(axis=0)).ravel()
        t = train.timestamps
        t_end = float(t.max()) if len(t) else 0.0
        t_recent = t_end - cfg.recent_fraction * (
            t_end - float(t.min() if len(t) else 0)
        )
        recent = np.bincount(train.item_index[t >= t_recent], minlength=n)
        # (-inf, not t_end: a t_end start made every seen item's last_seen t_end)
        last_seen = np.full(n, -np.inf)
        first_seen = np.full(n, t_end)
        np.maximum.at(last_seen, train.item_index, t.astype(np.float64))
        last_seen[counts == 0] = float(t.min()) if len(t) else 0.0
        np.minimum.at(first_seen, train.item_index, t.astype(np.float64))
        year = np.full(n, np.nan)
        genres = np.zeros((n, 1), dtype=np.float32)
        feats = train.item_features
        if feats is not None and len(feats) == n:
            if "year" in feats:
                year = np.asarray(pd_to_float(feats["year"]), dtype=np.float64)
            if "genres" in feats:
                names = sorted(
                    {g for gs in feats["genres"] if _is_list(gs) for g in gs}
                )
                if names:
                    col = {g: c for c, g in enumerate(names)}
                    genres = np.zeros((n, len(names)), dtype=np.float32)
                    for i, gs in enumerate(feats["genres"]):
                        for g in gs if _is_list(gs) else []:
                            genres[i, col[g]] = 1.0
        year = np.where(np.isfinite(year), year, np.nanmean(year) if np.isfinite(
            year).any() else 0.0)  # fmt: skip
        # co-occurrence cosine with shrinkage, top neighbours per item
        gram = (x.T @ x).toarray().astype(np.float64)  # (N, N)
        norms = np.sqrt(np.diag(gram))
        cos = gram / (np.outer(norms, norms) + cfg.shrinkage + 1e-12)
        np.fill_diagonal(cos, 0.0)
        cooc = _top_k_rows(cos, cfg.neighbors)
        # transitions last -> next over training sequences, row-normalised
        rows, cols = [], []
        for seq in train.sequences():
            rows.append(seq[:-1])
            cols.append(seq[1:])
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        trans = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n, n))
        # raw row totals: the online updates add counts to the exact raw table
        trans_row_total = np.asarray(trans.sum(axis=1)).ravel().astype(np.float32)
        trans = _row_normalize(trans.tocsr())
        # SVD item embedding of the co-occurrence cosine
        dim = max(1, min(cfg.svd_dim, n - 2))
        try:
            u_, s_, _ = svds(sp.csr_matrix(cos), k=dim, random_state=0)
            emb = u_ * np.sqrt(np.maximum(s_, 0.0))[None]
        except (ValueError, np.linalg.LinAlgError):  # tiny catalogs
            emb = np.zeros((n, dim))
        emb = emb / (np.linalg.norm(emb, axis=1, keepdims=True) + 1e-9)
        self.tables = {
            "log_pop": np.log1p(counts).astype(np.float32),
            "recent_log_pop": np.log1p(recent).astype(np.float32),
            "year": year.astype(np.float32),
            "genres": genres,
            "last_seen": last_seen,
            "first_seen": first_seen,
            "t_end": np.array(t_end),
            "trans_row_total": trans_row_total,
            "emb": emb.astype(np.float32),
            "feat_mean": np.zeros(len(FEATURES), np.float32),
            "feat_std": np.ones(len(FEATURES), np.float32),
        }
        for name, m in (("cooc", cooc), ("trans", trans)):
            m = m.tocsr()
            self.tables[f"{name}_data"] = m.data.astype(np.float32)
            self.tables[f"{name}_indices"] = m.indices.astype(np.int64)
            self.tables[f"{name}_indptr"] = m.indptr.astype(np.int64)
        self._sparse = {}

    def _feature_builder(self) -> KanFeatures:
        cfg: KANConfig = self.config
        return KanFeatures(
            self.tables, self.n_items, recent=cfg.recent,
            recent_decay=cfg.recent_decay, cache=self._sparse,
        )  # fmt: skip

    def features(self, histories: list[History], candidates: np.ndarray) -> np.ndarray:
        """Standardised features ``(B, C, F)`` of each history x candidate item
        (:class:`~recommendations.engine.models.kan_features.KanFeatures`).

        ``candidates`` is ``(B, C)`` item indices (one row per history).
        """
        return self._feature_builder()(histories, candidates)

    # -------------------------------------------------------------- training
    def setup(self, train: Interactions, seed: int) -> None:
        cfg: KANConfig = self.config
        self._fit_tables(train)
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.train_data = train
        ptr = train.user_ptr
        # every (user, position >= 1) is an example: prefix -> next item
        lengths = np.diff(ptr)
        self.example_user = np.repeat(
            np.arange(train.n_users), np.maximum(lengths - 1, 0)
        )
        self.example_pos = np.concatenate(
            [np.arange(1, n) for n in lengths if n > 1] or [np.zeros(0, np.int64)]
        )
        self.net = self.build_net().to(self.torch_device)
        # standardise on a sample, then fit every layer's grid to the data range
        sample = self._examples(min(500, max(len(self.example_user), 1)))
        if sample is not None:
            feats = self.features(sample[0], sample[1]).reshape(-1, len(FEATURES))
            self.tables["feat_mean"] = feats.mean(0)
            self.tables["feat_std"] = feats.std(0) + 1e-6
            feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
            rows = self.rng.choice(len(feats), min(len(feats), 4096), replace=False)
            self.net.update_grid(torch.from_numpy(np.clip(feats[rows], -5.0, 5.0)))
        self.optimizer = torch.optim.Adam(
            self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )

    def _examples(self, size: int) -> tuple[list[History], np.ndarray] | None:
        """``size`` random (prefix history, [target, negatives...]) examples."""
        if not len(self.example_user):
            return None
        cfg: KANConfig = self.config
        pick = self.rng.integers(0, len(self.example_user), size)
        ptr = self.train_data.user_ptr
        histories, targets = [], np.zeros(size, np.int64)
        for r, e in enumerate(pick):
            u, pos = self.example_user[e], self.example_pos[e]
            start = ptr[u]
            sl = slice(start, start + pos)
            histories.append(
                History(self.train_data.item_index[sl], self.train_data.timestamps[sl])
            )
            targets[r] = self.train_data.item_index[start + pos]
        neg = self.rng.integers(0, self.n_items, (size, cfg.negatives))
        return histories, np.concatenate([targets[:, None], neg], axis=1)

    def train_epoch(self, epoch: int) -> float:
        cfg: KANConfig = self.config
        net = self._require_net()
        net.train()
        optimizer = self._require_optimizer()
        device = self.torch_device
        total, count = 0.0, 0
        for _ in range(0, cfg.samples_per_epoch, cfg.batch_size):
            batch = self._examples(cfg.batch_size)
            if batch is None:
                return 0.0
            histories, cand = batch
            x = torch.from_numpy(self.features(histories, cand)).to(device)  # (B,C,F)
            logits = net(x.flatten(0, 1)).view(cand.shape)  # (B, C)
            # a negative equal to the target must not count against it
            clash = torch.from_numpy(cand[:, 1:] == cand[:, :1]).to(device)
            logits = torch.cat(
                [logits[:, :1], logits[:, 1:].masked_fill(clash, -1e9)], dim=1
            )
            loss = F.cross_entropy(logits, torch.zeros(len(cand), dtype=torch.long))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(cand)
            count += len(cand)
        return total / max(count, 1)

    def finish(self, valid: EvalTask | None) -> None:
        importance = self.feature_importance()
        top = sorted(importance, key=importance.__getitem__, reverse=True)[:5]
        self.fit_info = {"top_features": {k: round(importance[k], 4) for k in top}}
        logger.info("kan top features %s", self.fit_info["top_features"])

    # ----------------------------------------------------------- online
    def replace_tables(self, updates: Mapping[str, np.ndarray]) -> None:
        """Install new feature tables (online updates) and drop the CSR cache.

        Only the keys in ``updates`` change; arrays are stored, not copied, so
        callers must hand over fresh arrays (never mutate installed ones).
        """
        self.tables = {**self.tables, **updates}
        self._sparse = {}

    def fit_features(
        self,
        x: np.ndarray,
        labels: np.ndarray,
        *,
        loss: Literal["bce", "softmax"] = "bce",
        weights: np.ndarray | None = None,
        lr: float | None = None,
        steps: int | None = None,
        max_grad_norm: float | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> float:
        """SGD steps on precomputed features; changes only the KAN weights.

        Args:
            x: ``(B, C, F)`` standardised features (:meth:`features`).
            labels: ``(B, C)`` 1 = positive, 0 = negative.
            loss: ``bce``: binary cross-entropy over every entry; ``softmax``:
                per row with a positive, cross-entropy of the positives against
                the row's other entries (the offline objective), plus BCE on
                the entries of rows without a positive.
            weights: ``(B, C)`` weight of each entry in the BCE terms (0 leaves
                an entry out; default 1).
            lr: SGD learning rate (default ``online_lr``).
            steps: SGD steps (default ``online_steps``).
            max_grad_norm: clip the gradient's global norm to this.
            optimizer: an optimiser over ``net`` kept by the caller across
                calls (e.g. Adam; ``lr`` is then ignored), else plain SGD.

        Returns the loss before the update.
        """
        cfg: KANConfig = self.config
        net = self._require_net()
        x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        x_t = x_t.to(self.torch_device)
        y = torch.from_numpy(np.asarray(labels, dtype=np.float32))
        y = y.to(self.torch_device)
        w = torch.ones_like(y)
        if weights is not None:
            w = torch.from_numpy(np.asarray(weights, dtype=np.float32))
            w = w.to(self.torch_device)
        has_pos = y.sum(dim=1) > 0
        opt = optimizer or torch.optim.SGD(net.parameters(), lr=lr or cfg.online_lr)
        net.train()
        first = None

        def bce(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            value = F.binary_cross_entropy_with_logits(logits, y, w, reduction="sum")
            return value / w.sum().clamp_min(1e-12)

        for _ in range(steps or cfg.online_steps):
            logits = net(x_t.flatten(0, 1)).view(y.shape)  # (B, C)
            if loss == "bce":
                value = bce(logits, y, w)
            else:
                parts = []
                if bool(has_pos.any()):
                    target = y[has_pos] / y[has_pos].sum(dim=1, keepdim=True)
                    parts.append(F.cross_entropy(logits[has_pos], target))
                if bool((~has_pos).any()):
                    parts.append(bce(logits[~has_pos], y[~has_pos], w[~has_pos]))
                value = torch.stack(parts).mean()
            first = float(value.detach()) if first is None else first
            opt.zero_grad(set_to_none=True)
            value.backward()
            if max_grad_norm is not None:
                nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
            opt.step()
        return float(first or 0.0)

    def partial_fit(
        self,
        batch: OnlineBatch | Sequence[tuple[History | Sequence[int], int, float]],
        *,
        lr: float | None = None,
        steps: int | None = None,
    ) -> float:
        """A few SGD steps of BCE on new events; changes only the KAN weights.

        ``lr`` / ``steps`` override ``online_lr`` / ``online_steps``. Returns
        the loss before the update.
        """
        self._require_net()
        if not isinstance(batch, OnlineBatch):
            hs, items, labels = zip(*batch, strict=True) if batch else ((), (), ())
            batch = OnlineBatch(
                [h if isinstance(h, History) else History(np.asarray(h)) for h in hs],
                np.asarray(items, dtype=np.int64),
                np.asarray(labels, dtype=np.float32),
            )
        if not len(batch.items):
            return 0.0
        for h in batch.histories:
            self._check_items(h.items, self.n_items)
        self._check_items(batch.items, self.n_items)
        x = self.features(batch.histories, batch.items[:, None])  # (B, 1, F)
        y = batch.labels.astype(np.float32)[:, None]  # (B, 1)
        return self.fit_features(x, y, lr=lr, steps=steps)

    # --------------------------------------------------------------- scoring
    def _score(self, histories: list[History]) -> np.ndarray:
        catalog = np.arange(self.n_items)
        return self._score_candidates(
            histories, np.broadcast_to(catalog, (len(histories), self.n_items))
        )

    def _score_candidates(
        self, histories: list[History], cand: np.ndarray
    ) -> np.ndarray:
        """Only the candidates are featurised and scored: a ranker of
        retrieved candidates should not pay for the whole catalog (5 ms per
        request on ML-100K, 6x that on a 10k-item catalog)."""
        cfg: KANConfig = self.config
        net = self._require_net()
        net.eval()
        out = np.zeros(cand.shape, dtype=np.float32)
        with torch.no_grad():
            for s in range(0, len(histories), cfg.score_chunk):
                chunk = histories[s : s + cfg.score_chunk]
                x = torch.from_numpy(self.features(chunk, cand[s : s + len(chunk)]))
                out[s : s + len(chunk)] = (
                    net(x.flatten(0, 1).to(self.torch_device))
                    .view(len(chunk), -1).cpu().numpy()
                )  # fmt: skip
        return out

    def item_embeddings(self) -> np.ndarray | None:
        """The SVD co-occurrence embedding the ranker uses, ``(N, svd_dim)``."""
        if "emb" not in self.tables:
            return None
        return self.tables["emb"].copy()

    # ---------------------------------------------------- interpretation
    def feature_importance(self, sample: int = 1000) -> dict[str, float]:
        """Mean |phi_oj(x_j)| of the first layer per input feature, over outputs."""
        net = self._require_net()
        batch = self._examples(sample) if hasattr(self, "train_data") else None
        if batch is None:
            return dict.fromkeys(FEATURES, 0.0)
        feats = self.features(batch[0], batch[1][:, :1])[:, 0]  # (S, F)
        with torch.no_grad():
            first = net.kan_layers[0]
            edges = first.edge_values(torch.from_numpy(feats))  # (S, out, F)
        scores = edges.abs().mean(0).sum(0).numpy()  # (F,)
        return {f: float(v) for f, v in zip(FEATURES, scores, strict=True)}

    def plot_edge_functions(self, path: str | Path, top: int = 4) -> Path | None:
        """Save the first-layer edge functions of the ``top`` features (PNG).

        Returns ``None`` (and logs a warning) when matplotlib is missing.
        """
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            logger.warning("matplotlib is not installed; skipping the KAN plot")
            return None
        net = self._require_net()
        importance = self.feature_importance()
        names = sorted(importance, key=importance.__getitem__, reverse=True)[:top]
        layer = net.kan_layers[0]
        fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8))
        axes = np.atleast_1d(axes)
        for ax, name in zip(axes, names, strict=True):
            j = FEATURES.index(name)
            k = layer.order
            lo, hi = float(layer.grid[j, k]), float(layer.grid[j, -k - 1])
            xs = torch.linspace(lo, hi, 200)
            x = torch.zeros(200, layer.n_in)
            x[:, j] = xs
            with torch.no_grad():
                phi = layer.edge_values(x)[:, :, j]  # (200, out)
            ax.plot(xs.numpy(), phi.numpy(), linewidth=1)
            ax.set_title(f"{name}\n(importance {importance[name]:.3f})", fontsize=8)
            ax.set_xlabel("standardised value", fontsize=7)
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120)
        plt.close(fig)
        return out

    # -------------------------------------------------------------- state
    def get_state(self) -> dict[str, np.ndarray]:
        state = super().get_state()
        state.update({f"_t_{k}": np.asarray(v) for k, v in self.tables.items()})
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        params = {k: v for k, v in state.items() if not k.startswith("_t_")}
        if self.net is None:
            self.net = self.build_net().to(self.torch_device)
        net = self.net
        for i, layer in enumerate(net.kan_layers):  # grids may have been refined
            grid = np.asarray(params[f"layers.{i}.grid"])
            if grid.shape != tuple(layer.grid.shape):
                layer.grid = torch.from_numpy(grid)
                layer.spline_weight = nn.Parameter(
                    torch.from_numpy(np.asarray(params[f"layers.{i}.spline_weight"]))
                )
        super().set_state(params)
        self.tables = {
            k[3:]: np.asarray(v) for k, v in state.items() if k.startswith("_t_")
        }
        self._sparse = {}

    # ------------------------------------------------------------------ onnx
    def export_onnx(self, path: str | Path) -> Path:
        """Export the KAN ``features (B, C, F) -> scores (B, C)``.

        Only the network is a graph; the features (co-occurrence, SVD,
        recency... tables) are built in numpy by :meth:`onnx_feeds`, so ONNX
        scores exactly the candidates asked for. Batch and candidates are
        dynamic axes.
        """
        example = torch.zeros(2, 3, len(FEATURES))
        return export_module(
            self,
            _KANScores(self._require_net()),
            (example,),
            path,
            input_names=("features",),
            dynamic_axes={"features": {0: "batch", 1: "candidates"}},
        )

    def onnx_feeds(
        self, histories: list[History], candidates: np.ndarray | None
    ) -> OnnxFeeds:
        """Standardised features of each history x candidate (whole catalog if
        ``candidates`` is ``None``; else ``(B, C)`` item indices)."""
        return self._feature_builder().onnx_feeds(histories, candidates)


class _KANScores(nn.Module):
    """The exported graph: the KAN applied to every (history, candidate) row."""

    def __init__(self, net: KANNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        scores: torch.Tensor = self.net(features.flatten(0, 1))  # (B * C,)
        return scores.view(features.shape[0], features.shape[1])  # (B, C)


def _is_list(value: object) -> bool:
    return isinstance(value, list | tuple | np.ndarray)


def pd_to_float(values: Any) -> npt.NDArray[np.float64]:
    """Year column (maybe pandas ``Int64`` with NA) -> float64 with NaN."""
    import pandas as pd

    series = pd.to_numeric(pd.Series(values), errors="coerce")
    return cast("npt.NDArray[np.float64]", series.astype("float64").to_numpy())
