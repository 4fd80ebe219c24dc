"""SASRec: self-attentive sequential recommendation.

Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018.
Training loss: full-softmax cross-entropy over the whole catalog at every
position (sampled softmax with 512 uniform negatives above 5,000 items, where
a full softmax makes epochs too dear for the time budgets), which
gSASRec (Petrov & Macdonald, RecSys 2023) and "Turning Dross Into Gold Loss"
(Klenitskiy & Vasilev, RecSys 2023) show matters more than the architecture.

Architecture as in the paper: item embeddings scaled by sqrt(D) plus learned
positions, ``blocks`` causal self-attention blocks (LayerNorm on the query,
residual attention, LayerNorm + point-wise feed-forward with residual),
dropout, a final LayerNorm; item output embeddings are tied to the input
ones. Sequences are left-padded with index 0 (items are shifted by one).
Scoring reads the user's *current* history (last ``max_len`` items), so a
new event changes the output without retraining.

Same-second events (issue 19): training sequences and histories come in the
container's order, so a burst of events with one timestamp is a run in the
seeded random order of ``recommendations.engine.data.ordering`` (never
ascending item id, which SASRec would learn as "the next item has a larger
id"). Every event keeps its own position; bursts are not merged into one.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from recommendations.engine.data.interactions import History, Interactions
from recommendations.engine.models.base import ModelConfig
from recommendations.engine.models.torch_base import TorchRecommender
from recommendations.engine.onnx.export import export_module
from recommendations.engine.onnx.feeds import sasrec_seq
from recommendations.engine.onnx.inputs import OnnxFeeds

logger = logging.getLogger(__name__)


SAMPLED_ABOVE_ITEMS = 5000
"""``loss="auto"`` trains with sampled softmax above this many items."""


class SASRecConfig(ModelConfig):
    max_len: int = Field(50, ge=1, le=4096)
    """Longest history used (older items are dropped). 50 beat 100 and 200 on
    ML-100K validation (recent items predict the next one best)."""
    hidden: int = Field(64, ge=4)
    """Embedding and model width D."""
    blocks: int = Field(2, ge=1, le=12)
    """Number of self-attention blocks."""
    heads: int = Field(1, ge=1)
    """Attention heads; must divide ``hidden``."""
    ffn_multiplier: int = Field(1, ge=1, le=8)
    """Feed-forward inner width = ``ffn_multiplier * hidden`` (paper: 1,
    RecBole: 4)."""
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    """Dropout on embeddings and feed-forward outputs."""
    attention_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on attention weights (paper: same as ``dropout``). Off by default:
    on CPU it forces the slow attention path and roughly doubles epoch time."""
    lr: float = Field(2e-3, gt=0)
    """Adam learning rate."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    batch_size: int = Field(32, ge=1)
    """Sequences per optimisation step."""
    loss: Literal["auto", "ce", "sampled"] = "auto"
    """``ce``: softmax over all items; ``sampled``: over ``negatives`` uniform
    items; ``auto``: ``ce`` up to :data:`SAMPLED_ABOVE_ITEMS` items, else
    ``sampled`` (a full softmax's cost grows with the catalog: on
    ml-latest-small's 9.7k items only 11 epochs fit the ``quick`` budget and
    test NDCG@10 was 0.0345; sampled, 512 negatives: early stop at epoch 72
    in 140 s, 0.0554)."""
    negatives: int = Field(512, ge=1)
    """Negatives per step for ``loss="sampled"``."""
    label_smoothing: float = Field(0.2, ge=0.0, lt=1.0)
    """Label smoothing of the cross-entropy (both losses); 0.2 chosen on
    ML-100K validation over 0, 0.1 and 0.3."""
    all_windows: bool = True
    """Also train on the older ``max_len + 1`` windows of histories longer than
    that (stride ``max_len``, so every train item is a target once); off: only
    the newest window per user, older items are never targets."""

    TRAINER_PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"max_epochs": 200, "patience": 10, "eval_every": 2},
        "full": {"max_epochs": 400, "patience": 20, "eval_every": 2},
    }

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> SASRecConfig:
        if self.hidden % self.heads:
            raise ValueError(
                f"hidden={self.hidden} is not divisible by heads={self.heads}"
            )
        return self


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (queries from the normalised input)."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(hidden, hidden)
        self.kv = nn.Linear(hidden, 2 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.dropout = dropout

    def forward(self, q_in: torch.Tensor, kv_in: torch.Tensor) -> torch.Tensor:
        b, length, d = q_in.shape
        q = self.q(q_in).view(b, length, self.heads, -1).transpose(1, 2)  # (B, H, L, d)
        k, v = self.kv(kv_in).view(b, length, 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, L, d)
        out: torch.Tensor = self.out(a.transpose(1, 2).reshape(b, length, d))
        return out


class SASRecBlock(nn.Module):
    def __init__(
        self,
        hidden: int,
        heads: int,
        dropout: float,
        attn_dropout: float,
        inner: int | None = None,
    ) -> None:
        super().__init__()
        inner = inner or hidden  # feed-forward inner width
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-8)
        self.attn = CausalSelfAttention(hidden, heads, attn_dropout)
        self.ffn_norm = nn.LayerNorm(hidden, eps=1e-8)
        self.ffn = nn.Sequential(
            nn.Linear(hidden, inner), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(inner, hidden), nn.Dropout(dropout),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        q = self.attn_norm(x)  # (B, L, D)
        x = q + self.attn(q, x)
        x = self.ffn_norm(x)
        x = x + self.ffn(x)
        return x * keep  # zero the padded positions, (B, L, D)


class SASRecNet(nn.Module):
    def __init__(self, n_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        self.item_emb = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.emb_dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            SASRecBlock(
                cfg.hidden,
                cfg.heads,
                cfg.dropout,
                cfg.attention_dropout,
                inner=cfg.ffn_multiplier * cfg.hidden,
            )
            for _ in range(cfg.blocks)
        )
        self.final_norm = nn.LayerNorm(cfg.hidden, eps=1e-8)
        self.scale = math.sqrt(cfg.hidden)
        self.max_len = cfg.max_len
        nn.init.normal_(self.item_emb.weight, std=cfg.hidden**-0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """``seq`` (B, L) shifted item indices, 0 = padding -> hidden (B, L, D).

        Positions count from the right (the newest item is always position
        ``max_len - 1``), so batches trimmed to their longest row agree.
        """
        length = seq.shape[1]
        positions = torch.arange(self.max_len - length, self.max_len, device=seq.device)
        x = self.item_emb(seq) * self.scale + self.pos_emb(positions)[None]  # (B, L, D)
        x = self.emb_dropout(x)
        keep = (seq > 0).unsqueeze(-1).to(x.dtype)  # (B, L, 1)
        x = x * keep
        for block in self.blocks:
            x = block(x, keep)
        hidden: torch.Tensor = self.final_norm(x)
        return hidden

    def item_weights(self) -> torch.Tensor:
        return self.item_emb.weight[1:]  # (N, D)


class SASRec(TorchRecommender[SASRecNet]):
    name: ClassVar[str] = "sasrec"
    Config = SASRecConfig
    config: SASRecConfig

    def build_net(self) -> SASRecNet:
        return SASRecNet(self.n_items, self.config)

    # -------------------------------------------------------------- training
    def setup(self, train: Interactions, seed: int) -> None:
        cfg: SASRecConfig = self.config
        device = self.torch_device
        self.net = self.build_net().to(device)
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(),
            lr=cfg.lr,
            betas=(0.9, 0.98),
            weight_decay=cfg.weight_decay,
        )
        self.generator = torch.Generator().manual_seed(seed)
        rows = [
            window + 1
            for s in train.sequences()
            for window in self._windows(s, cfg.max_len, cfg.all_windows)
        ]
        width = cfg.max_len + 1
        padded = np.zeros((len(rows), width), dtype=np.int64)  # left padding
        for r, s in enumerate(rows):
            padded[r, width - len(s) :] = s
        self.train_sequences = torch.from_numpy(padded)  # (S, L + 1)
        self.train_lengths = torch.tensor([len(r) for r in rows])  # (S,)

    @staticmethod
    def _windows(seq: np.ndarray, max_len: int, all_windows: bool) -> list[np.ndarray]:
        """Training rows of ``max_len + 1`` items (inputs + next-item targets).

        The newest window always; with ``all_windows`` also the older ones at
        stride ``max_len``, so each item after the first is a target once.
        """
        windows = []
        end = len(seq)
        while end >= 2:
            windows.append(seq[max(0, end - max_len - 1) : end])
            if not all_windows:
                break
            end -= max_len
        return windows

    def _batches(self) -> list[torch.Tensor]:
        """Shuffled batches of similar length (less padding to compute)."""
        size = self.config.batch_size
        order = torch.randperm(len(self.train_sequences), generator=self.generator)
        batches: list[torch.Tensor] = []
        chunk = size * 16
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            part = part[torch.argsort(self.train_lengths[part], stable=True)]
            batches.extend(part[i : i + size] for i in range(0, len(part), size))
        shuffle = torch.randperm(len(batches), generator=self.generator).tolist()
        return [batches[i] for i in shuffle]

    @property
    def loss_kind(self) -> str:
        """The loss actually used (``auto`` resolved by the catalog size)."""
        loss = self.config.loss
        if loss == "auto":
            return "sampled" if self.n_items > SAMPLED_ABOVE_ITEMS else "ce"
        return loss

    def train_epoch(self, epoch: int) -> float:
        cfg: SASRecConfig = self.config
        net = self._require_net()
        net.train()
        optimizer = self._require_optimizer()
        device = self.torch_device
        total, count = 0.0, 0
        for index in self._batches():
            # widths rounded up to a multiple of 16: fewer distinct shapes to tune
            width = min(
                -(-int(self.train_lengths[index].max()) // 16) * 16, cfg.max_len + 1
            )
            batch = self.train_sequences[index, -width:].to(device)  # (B, W + 1)
            inputs, targets = batch[:, :-1], batch[:, 1:]  # (B, L)
            hidden: torch.Tensor = net(inputs)  # (B, L, D)
            mask = targets > 0
            h = hidden[mask]  # (P, D)
            t = targets[mask] - 1  # (P,)
            weights = net.item_weights()  # (N, D)
            if self.loss_kind == "ce":
                logits = h @ weights.T  # (P, N)
                loss = F.cross_entropy(logits, t, label_smoothing=cfg.label_smoothing)
            else:
                neg = torch.randint(
                    0, weights.shape[0], (cfg.negatives,), generator=self.generator
                ).to(device)
                pos_logit = (h * weights[t]).sum(-1, keepdim=True)  # (P, 1)
                neg_logit = h @ weights[neg].T  # (P, M)
                neg_logit = neg_logit.masked_fill(neg[None, :] == t[:, None], -1e9)
                logits = torch.cat([pos_logit, neg_logit], dim=1)
                loss = F.cross_entropy(
                    logits, torch.zeros_like(t), label_smoothing=cfg.label_smoothing
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(t)
            count += len(t)
        return total / max(count, 1)

    # --------------------------------------------------------------- scoring
    def _score(self, histories: list[History]) -> np.ndarray:
        cfg: SASRecConfig = self.config
        net = self._require_net()
        net.eval()
        width = max(1, min(cfg.max_len, max(len(h.items) for h in histories)))
        seq = np.zeros((len(histories), width), dtype=np.int64)  # left padding
        for r, h in enumerate(histories):
            items = h.items[-width:] + 1
            if len(items):
                seq[r, width - len(items) :] = items
        with torch.no_grad():
            x = torch.from_numpy(seq).to(self.torch_device)
            last: torch.Tensor = net(x)[:, -1, :]  # (B, D)
            scores = last @ net.item_weights().T  # (B, N)
        return scores.float().cpu().numpy()

    def item_embeddings(self) -> np.ndarray | None:
        net = self._require_net()
        return net.item_weights().detach().cpu().numpy()

    # ------------------------------------------------------------------ onnx
    def export_onnx(self, path: str | Path) -> Path:
        """Export ``seq (B, L) int64 -> scores (B, N)``, ``L <= max_len``.

        ``seq`` is what :meth:`onnx_feeds` builds (left-padded, items shifted
        by one); batch and length are dynamic axes.
        """
        example = torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.long)
        example = example.clamp_max(self.n_items)[:, -self.config.max_len :]
        return export_module(
            self,
            _SASRecScores(self._require_net()),
            (example,),
            path,
            input_names=("seq",),
            dynamic_axes={"seq": {0: "batch", 1: "length"}},
        )

    def onnx_feeds(
        self, histories: list[History], candidates: np.ndarray | None
    ) -> OnnxFeeds:
        """The graph's inputs for ``histories``: the padding :meth:`_score` does."""
        return OnnxFeeds({"seq": sasrec_seq(histories, self.config.max_len)})


class _SASRecScores(nn.Module):
    """The exported graph: last position's hidden state x tied item embeddings."""

    def __init__(self, net: SASRecNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        last: torch.Tensor = self.net(seq)[:, -1, :]  # (B, D)
        return last @ self.net.item_weights().T  # (B, N)
