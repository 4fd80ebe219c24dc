"""Neural ODE user state: an ODE-RNN over the user's irregularly timed events.

Chen, Rubanova, Bettencourt & Duvenaud, "Neural Ordinary Differential
Equations", NeurIPS 2018; the ODE-RNN of Rubanova, Chen & Duvenaud, "Latent
ODEs for Irregularly-Sampled Time Series", NeurIPS 2019.

The user's state ``h (D,)`` starts at a learned ``h0``. Between two events it
follows a learned ODE ``dh/dt = f(h)`` (an MLP) over the real time gap; at
each event it jumps with a GRU cell fed the item's embedding. The next item
is scored by ``proj(h) . e_i`` with output embeddings tied to the input ones,
and trained with softmax cross-entropy over the whole catalog at every
position (as the ``sasrec`` model in this engine).

Time: the ODE runs over ``delta = log1p(gap / time_unit_s)`` (a monotone
warp of the real gap: days of inactivity matter, months saturate). A batch
of users with different gaps is solved in one call by rescaling time,
``dh/ds = delta f(h)`` for ``s in [0, 1]``, exact for autonomous ``f``.
Training integrates with torchdiffeq's ``odeint`` (``solver``); scoring, and
the exported graph, use :func:`rk4_solve`, a fixed-step classic RK4 written
in plain torch (ONNX-friendly, no adaptive control flow). The two agree to
the solvers' truncation error (tested).

``phase=True`` ("Quantum-Fluid", the original design's name, registered as
``quantum_fluid``): the state's ``D`` coordinates are read as ``D/2`` complex
numbers, and the ODE gets an extra linear term ``i omega * z`` with learned
frequencies ``omega``, i.e. each complex coordinate rotates with a
time-dependent phase between events, on top of the learned drift. Nothing
quantum or fluid is involved: it is an ODE-RNN whose vector field has a
learned rotation-generator part; the score ``Re(<z, e_i>)`` is the ordinary
dot product of the real and imaginary parts.

Departures from the papers: the prediction is made from the state evolved by
a fixed horizon (the median training ``delta``) after the last event,
because the time of the next request is not known when serving; histories
without timestamps use the median training gap between events; sequences
are truncated to the last ``max_len`` events.

Same-second events (issue 19): sequences come in the container's order (a
burst with one timestamp in the seeded random order of
``recommendations.engine.data.ordering``); inside a burst the gap is 0, so the ODE
evolves the state for no time between its events - the model sees that they
happened together, but still reads them one after another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn
from torchdiffeq import odeint

from recommendations.engine.data.interactions import History, Interactions
from recommendations.engine.models.base import ModelConfig
from recommendations.engine.models.torch_base import TorchRecommender
from recommendations.engine.onnx.export import export_module
from recommendations.engine.onnx.feeds import neural_ode_pack
from recommendations.engine.onnx.inputs import OnnxFeeds

logger = logging.getLogger(__name__)


class NeuralODEConfig(ModelConfig):
    dim: int = Field(64, ge=2)
    """State and item embedding size D (even when ``phase``)."""
    ode_hidden: int = Field(64, ge=1)
    """Width of the MLP vector field f."""
    phase: bool = False
    """Complex state with learned rotation frequencies ("Quantum-Fluid")."""
    solver: Literal["rk4", "dopri5", "euler", "midpoint"] = "rk4"
    """torchdiffeq method used in training."""
    ode_steps: int = Field(4, ge=1, le=64)
    """Fixed steps per gap (rk4 / euler / midpoint, and the serving RK4)."""
    rtol: float = Field(1e-4, gt=0)
    """Relative tolerance of adaptive solvers."""
    atol: float = Field(1e-5, gt=0)
    """Absolute tolerance of adaptive solvers."""
    time_unit_s: float = Field(86_400.0, gt=0)
    """Seconds per time unit before the log warp (default: days)."""
    max_len: int = Field(50, ge=1)
    """Most recent events used per user."""
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    """Dropout on item embeddings."""
    lr: float = Field(2e-3, gt=0)
    """Adam learning rate."""
    weight_decay: float = Field(0.0, ge=0)
    """Adam weight decay."""
    batch_size: int = Field(64, ge=1)
    """Users per optimisation step."""

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {},
        "full": {"max_len": 100, "dim": 96},
    }
    TRAINER_PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"max_epochs": 100, "patience": 5, "eval_every": 2},
        "full": {"max_epochs": 300, "patience": 10, "eval_every": 2},
    }

    @model_validator(mode="after")
    def _even_dim(self) -> NeuralODEConfig:
        if self.phase and self.dim % 2:
            raise ValueError("dim must be even when phase=True")
        return self


class QuantumFluidConfig(NeuralODEConfig):
    """``neural_ode`` with the complex phase on (see module docstring)."""

    phase: bool = True
    """Complex state with learned rotation frequencies (on for this alias)."""


def rk4_solve(
    func: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor, steps: int
) -> torch.Tensor:
    """Classic fixed-step RK4 of ``dh/ds = func(h)`` from ``s = 0`` to ``1``."""
    dt = 1.0 / steps
    for _ in range(steps):
        k1 = func(h)
        k2 = func(h + 0.5 * dt * k1)
        k3 = func(h + 0.5 * dt * k2)
        k4 = func(h + dt * k3)
        h = h + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return h


class ODEFunc(nn.Module):
    """Vector field ``f(h)`` (+ rotation ``i omega z`` when ``phase``)."""

    def __init__(self, dim: int, hidden: int, phase: bool) -> None:
        super().__init__()
        first, last = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.net = nn.Sequential(first, nn.Tanh(), last)
        nn.init.zeros_(last.weight)  # start from dh/dt = bias: near-still
        nn.init.zeros_(last.bias)
        self.omega = nn.Parameter(torch.randn(dim // 2) * 0.5) if phase else None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(h)  # (B, D)
        if self.omega is not None:
            re, im = h.chunk(2, dim=-1)  # (B, D/2) each
            out = out + torch.cat([-self.omega * im, self.omega * re], dim=-1)
        return out


class Rescaled(nn.Module):
    """``dh/ds = delta * f(h)``: one solve over ``s in [0, 1]`` for every gap."""

    def __init__(self, func: nn.Module, delta: torch.Tensor) -> None:
        super().__init__()
        self.func = func
        self.delta = delta  # (B, 1)

    def forward(self, s: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        dh: torch.Tensor = self.delta * self.func(h)
        return dh


class NeuralODENet(nn.Module):
    horizon: torch.Tensor
    """Buffer: the median warped gap (the prediction horizon)."""

    def __init__(self, n_items: int, cfg: NeuralODEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=cfg.dim**-0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.h0 = nn.Parameter(torch.zeros(cfg.dim))
        self.ode = ODEFunc(cfg.dim, cfg.ode_hidden, cfg.phase)
        self.gru = nn.GRUCell(cfg.dim, cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.register_buffer("horizon", torch.tensor(1.0))  # median delta

    def evolve(self, h: torch.Tensor, delta: torch.Tensor, train: bool) -> torch.Tensor:
        """State after ``delta (B,)`` warped time units: ``(B, D) -> (B, D)``."""
        cfg = self.cfg
        func = Rescaled(self.ode, delta.unsqueeze(-1))
        if not train:
            return rk4_solve(lambda x: func(torch.zeros(()), x), h, cfg.ode_steps)
        ts = torch.tensor([0.0, 1.0], dtype=h.dtype, device=h.device)
        out: torch.Tensor  # torchdiffeq is untyped
        if cfg.solver == "dopri5":
            out = odeint(func, h, ts, method="dopri5", rtol=cfg.rtol, atol=cfg.atol)
        else:
            options = {"step_size": 1.0 / cfg.ode_steps}
            out = odeint(func, h, ts, method=cfg.solver, options=options)
        return out[-1]

    def forward(
        self,
        seq: torch.Tensor,
        delta: torch.Tensor,
        train: bool,
        last_only: bool = False,
    ) -> torch.Tensor:
        """States after every event, evolved to the prediction horizon.

        Args:
            seq: ``(B, L)`` shifted item indices, 0 = padding (left-padded).
            delta: ``(B, L)`` warped gap before each event (0 for the first).
            train: integrate with torchdiffeq (else the plain-torch RK4).
            last_only: only the query after the last event (scoring).

        Returns:
            ``(B, L, D)`` query vectors (after ``proj``), ``(B, 1, D)`` if
            ``last_only``.
        """
        b, length = seq.shape
        x = self.dropout(self.item_emb(seq))  # (B, L, D)
        h = self.h0.expand(b, -1)  # (B, D)
        horizon = self.horizon.expand(b)
        outs = []
        for t in range(length):
            valid = (seq[:, t] > 0).unsqueeze(-1)  # (B, 1)
            h_ode = self.evolve(h, delta[:, t] * valid.squeeze(-1), train)
            h = torch.where(valid, self.gru(x[:, t], h_ode), h)  # jump
            if not last_only or t == length - 1:
                outs.append(self.evolve(h, horizon, train))
        query: torch.Tensor = self.proj(torch.stack(outs, dim=1))  # (B, L, D)
        return query

    def item_weights(self) -> torch.Tensor:
        return self.item_emb.weight[1:]  # (N, D)


class NeuralODE(TorchRecommender[NeuralODENet]):
    name: ClassVar[str] = "neural_ode"
    Config = NeuralODEConfig
    config: NeuralODEConfig

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.median_gap_s = 86_400.0

    def build_net(self) -> NeuralODENet:
        return NeuralODENet(self.n_items, self.config)

    def warp(self, gaps_s: np.ndarray) -> np.ndarray:
        """Real gaps in seconds -> warped ODE time ``log1p(gap / unit)``."""
        warped: np.ndarray = np.log1p(np.maximum(gaps_s, 0.0) / self.config.time_unit_s)
        return warped

    def _pack(self, histories: list[History], width: int) -> tuple[np.ndarray, ...]:
        """Left-padded ``(B, W)`` shifted items and warped gaps of the histories."""
        return neural_ode_pack(
            histories, width, median_gap_s=self.median_gap_s,
            time_unit_s=self.config.time_unit_s,
        )  # fmt: skip

    # -------------------------------------------------------------- training
    def setup(self, train: Interactions, seed: int) -> None:
        cfg: NeuralODEConfig = self.config
        self.generator = torch.Generator().manual_seed(seed)
        histories = [h for h in train.histories() if len(h.items) >= 2]
        gaps = np.concatenate(
            [
                np.diff(h.timestamps.astype(np.float64))
                for h in histories
                if h.timestamps is not None  # always set on training histories
            ]
            or [np.zeros(1)]
        )
        self.median_gap_s = float(np.median(gaps)) if len(gaps) else 86_400.0
        self.net = self.build_net().to(self.torch_device)
        with torch.no_grad():
            self.net.horizon.fill_(float(self.warp(np.array(self.median_gap_s))))
        self.optimizer = torch.optim.Adam(
            self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        seq, delta = self._pack(histories, cfg.max_len + 1)
        self.train_seq = torch.from_numpy(seq)  # (S, L + 1)
        self.train_delta = torch.from_numpy(delta)  # (S, L + 1)

    def train_epoch(self, epoch: int) -> float:
        cfg: NeuralODEConfig = self.config
        net = self._require_net()
        net.train()
        optimizer = self._require_optimizer()
        device = self.torch_device
        order = torch.randperm(len(self.train_seq), generator=self.generator)
        total, count = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            seq = self.train_seq[idx].to(device)
            delta = self.train_delta[idx].to(device)
            width = int((seq > 0).sum(1).max())  # drop all-padding columns
            seq, delta = seq[:, -width:], delta[:, -width:]
            query: torch.Tensor = net(
                seq[:, :-1], delta[:, :-1], train=True
            )  # (B, L, D)
            targets = seq[:, 1:]  # (B, L)
            mask = (targets > 0) & (seq[:, :-1] > 0)
            logits = query[mask] @ net.item_weights().T  # (P, N)
            loss = F.cross_entropy(logits, targets[mask] - 1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * int(mask.sum())
            count += int(mask.sum())
        return total / max(count, 1)

    # --------------------------------------------------------------- scoring
    def _score(self, histories: list[History]) -> np.ndarray:
        cfg: NeuralODEConfig = self.config
        net = self._require_net()
        net.eval()
        width = max(1, min(cfg.max_len, max(len(h.items) for h in histories)))
        seq, delta = self._pack(histories, width)
        with torch.no_grad():
            query: torch.Tensor = net(
                torch.from_numpy(seq).to(self.torch_device),
                torch.from_numpy(delta).to(self.torch_device),
                train=False,
                last_only=True,
            )[:, -1]  # (B, D)
            scores = query @ net.item_weights().T  # (B, N)
        return scores.float().cpu().numpy()

    def item_embeddings(self) -> np.ndarray | None:
        return self._require_net().item_weights().detach().cpu().numpy().copy()

    # -------------------------------------------------------------- state
    def get_state(self) -> dict[str, np.ndarray]:
        state = super().get_state()
        state["_median_gap_s"] = np.array(self.median_gap_s)
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        super().set_state({k: v for k, v in state.items() if not k.startswith("_")})
        if "_median_gap_s" in state:
            self.median_gap_s = float(state["_median_gap_s"])

    # ------------------------------------------------------------------ onnx
    def export_onnx(self, path: str | Path) -> Path:
        """Export ``seq (B, max_len) int64, delta (B, max_len) -> scores (B, N)``.

        The graph is the scoring path: the fixed-step RK4 (:func:`rk4_solve`,
        ``ode_steps`` steps per gap) and the GRU jumps, unrolled over
        ``max_len`` events because the tracer unrolls Python loops. So the
        length is fixed (batch is dynamic) and :meth:`onnx_feeds` left-pads
        every history to ``max_len``: exact, since a padded event has a zero
        gap (the RK4 update is then exactly zero) and keeps the state.
        """
        width = self.config.max_len
        seq = torch.arange(2 * width).reshape(2, width) % (self.n_items + 1)
        delta = torch.full((2, width), 0.5)
        return export_module(
            self,
            _NeuralODEScores(self._require_net()),
            (seq, delta),
            path,
            input_names=("seq", "delta"),
            dynamic_axes={"seq": {0: "batch"}, "delta": {0: "batch"}},
        )

    def onnx_feeds(
        self, histories: list[History], candidates: np.ndarray | None
    ) -> OnnxFeeds:
        """Shifted items and warped gaps, left-padded to ``max_len``."""
        seq, delta = self._pack(histories, self.config.max_len)
        return OnnxFeeds({"seq": seq, "delta": delta})


class QuantumFluid(NeuralODE):
    """The original design's name for ``neural_ode`` with ``phase=True``."""

    name: ClassVar[str] = "quantum_fluid"
    Config = QuantumFluidConfig


class _NeuralODEScores(nn.Module):
    """The exported graph: RK4 ODE-RNN state after the horizon x item embeddings."""

    def __init__(self, net: NeuralODENet) -> None:
        super().__init__()
        self.net = net

    def forward(self, seq: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        query: torch.Tensor = self.net(seq, delta, train=False, last_only=True)
        query = query[:, -1]  # (B, D)
        return query @ self.net.item_weights().T  # (B, N)
