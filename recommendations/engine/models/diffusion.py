"""DiffRec: a diffusion model over the user's interaction vector.

Wang, Xu, Feng, Lin, He & Chua, "Diffusion Recommender Model", SIGIR 2023.

As in the paper: the forward process adds Gaussian noise to the user's binary
interaction vector ``x0`` with a *linear variance* schedule (``1 - abar_t``
grows linearly from ``noise_scale * noise_min`` to ``noise_scale *
noise_max`` over ``steps``), deliberately small so the personalised signal
survives; the denoiser is an MLP (input dropout, tanh layers) fed with the
L2-normalised ``x_t`` concatenated with a sinusoidal step embedding; it
predicts ``x0`` and is trained with the SNR-reweighted MSE
(``SNR(t-1) - SNR(t)``, weight 1 at ``t = 0``) and importance-sampled steps
(``p(t) ~ sqrt(E[L_t^2])`` over the last ``history_per_step`` losses, uniform
until every step has them). Inference starts from a partially noised input
``x_S`` (``S = sampling_steps``) and runs the reverse posterior means back to
``x0``; ranking uses the predicted ``x0``.

Departures from the paper:

- ``inference_noise=False`` (default) noises the inference input with its
  mean only (``sqrt(abar_S) x0``) so scores are deterministic; the official
  code draws fresh noise per call. ``True`` draws it from a seeded generator.
- L-DiffRec (``latent_dim``): the paper clusters items (k-means on item
  embeddings) and trains one VAE per cluster. Here one deterministic linear
  encoder/decoder compresses the whole catalog to ``latent_dim``, trained
  jointly (multinomial reconstruction loss + latent diffusion loss); there is
  no clustering and no KL term. Use it when ``n_items`` is large.

Order-free: a user is a set of items, so the order of same-second events
(issue 19) matters only through which event the split holds out.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from recommendations.engine.data.interactions import History, Interactions
from recommendations.engine.models.base import ModelConfig
from recommendations.engine.models.itemknn import histories_matrix
from recommendations.engine.models.torch_base import TorchRecommender
from recommendations.engine.onnx.export import export_module
from recommendations.engine.onnx.inputs import OnnxFeeds

logger = logging.getLogger(__name__)


class DiffRecConfig(ModelConfig):
    steps: int = Field(5, ge=1, le=1000)
    """Diffusion steps T."""
    noise_scale: float = Field(0.01, gt=0, le=1)
    """Scale of the variance schedule (paper: 1e-5 .. 1e-1)."""
    noise_min: float = Field(0.001, gt=0, lt=1)
    """Variance at step 1, before ``noise_scale``."""
    noise_max: float = Field(0.01, gt=0, lt=1)
    """Variance at step T, before ``noise_scale``."""
    sampling_steps: int = Field(0, ge=0)
    """Noise level S of the inference input; 0 = denoise the clean history."""
    inference_noise: bool = False
    """Draw Gaussian noise for the inference input (seeded) instead of its mean."""
    hidden: tuple[int, ...] = (600,)
    """Widths of the denoiser's hidden layers (mirrored to the output)."""
    step_emb: int = Field(10, ge=2)
    """Size of the sinusoidal step embedding."""
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    """Dropout on the denoiser's input."""
    reweight: bool = True
    """SNR-based loss weights (paper: on for x0 prediction)."""
    importance_sampling: bool = True
    """Sample steps by their recent loss instead of uniformly."""
    history_per_step: int = Field(10, ge=1)
    """Losses kept per step for importance sampling."""
    latent_dim: int | None = Field(None, ge=2)
    """L-DiffRec: diffuse in a learned latent space of this size (None = off)."""
    lr: float = Field(1e-3, gt=0)
    """Adam learning rate."""
    weight_decay: float = Field(0.0, ge=0)
    """Adam weight decay."""
    batch_size: int = Field(128, ge=1)
    """Users per optimisation step."""

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"hidden": (600,)},
        "full": {"hidden": (1000,), "steps": 10},
    }
    TRAINER_PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {"max_epochs": 200, "patience": 10, "eval_every": 2},
        "full": {"max_epochs": 500, "patience": 20, "eval_every": 2},
    }

    @model_validator(mode="after")
    def _check(self) -> DiffRecConfig:
        if self.noise_min > self.noise_max:
            raise ValueError("noise_min must be <= noise_max")
        if self.sampling_steps > self.steps:
            raise ValueError("sampling_steps must be <= steps")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError("hidden must list positive widths")
        return self


class Schedule:
    """The linear-variance noise schedule and its posterior coefficients."""

    def __init__(self, cfg: DiffRecConfig) -> None:
        start, end = cfg.noise_scale * cfg.noise_min, cfg.noise_scale * cfg.noise_max
        variance = np.linspace(start, end, cfg.steps, dtype=np.float64)  # 1 - abar
        abar = 1.0 - variance  # (T,)
        abar_prev = np.concatenate([[1.0], abar[:-1]])
        betas = 1.0 - abar / abar_prev
        self.abar = torch.tensor(abar, dtype=torch.float32)
        self.abar_prev = torch.tensor(abar_prev, dtype=torch.float32)
        self.betas = torch.tensor(betas, dtype=torch.float32)
        # posterior q(x_{t-1} | x_t, x0) mean = c0 * x0 + ct * x_t
        self.c0 = torch.tensor(
            betas * np.sqrt(abar_prev) / (1 - abar), dtype=torch.float32
        )
        self.ct = torch.tensor(
            (1 - abar_prev) * np.sqrt(1 - betas) / (1 - abar), dtype=torch.float32
        )
        snr = abar / (1 - abar)
        snr_prev = np.concatenate([[np.inf], snr[:-1]])
        weight = np.where(np.arange(cfg.steps) == 0, 1.0, snr_prev - snr)
        self.loss_weight = torch.tensor(weight, dtype=torch.float32)  # (T,)

    def q_sample(
        self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None
    ) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``; ``t`` is ``(B,)``."""
        a = self.abar[t].unsqueeze(-1)  # (B, 1)
        out = a.sqrt() * x0
        if noise is not None:
            out = out + (1 - a).sqrt() * noise
        return out  # (B, N)


def step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer steps ``(B,)`` -> ``(B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / half).to(t.device)
    args = t.float().unsqueeze(-1) * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class Denoiser(nn.Module):
    """MLP ``f(x_t, t) -> x0_hat`` as in DiffRec (tanh layers, input dropout)."""

    def __init__(self, width: int, cfg: DiffRecConfig) -> None:
        super().__init__()
        self.step_dim = cfg.step_emb
        self.step_proj = nn.Linear(cfg.step_emb, cfg.step_emb)
        self.dropout = nn.Dropout(cfg.dropout)
        dims = [width + cfg.step_emb, *cfg.hidden]
        self.down = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(dims, dims[1:], strict=False)
        )
        up = [*cfg.hidden[::-1], width]
        self.up = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(up, up[1:], strict=False)
        )
        for layer in [*self.down, *self.up]:
            nn.init.xavier_normal_(layer.weight)
            nn.init.normal_(layer.bias, std=0.001)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.step_proj(step_embedding(t, self.step_dim))  # (B, E)
        h: torch.Tensor = self.dropout(F.normalize(x, dim=-1))  # (B, W)
        h = torch.cat([h, emb], dim=-1)  # (B, W + E)
        for layer in self.down:
            h = torch.tanh(layer(h))  # (B, H_k)
        for k, layer in enumerate(self.up):
            h = layer(h)
            if k < len(self.up) - 1:
                h = torch.tanh(h)
        return h  # (B, W)


class DiffRecNet(nn.Module):
    def __init__(self, n_items: int, cfg: DiffRecConfig) -> None:
        super().__init__()
        self.latent = cfg.latent_dim is not None
        width = cfg.latent_dim if cfg.latent_dim is not None else n_items
        if self.latent:
            self.encoder = nn.Linear(n_items, width)
            self.decoder = nn.Linear(width, n_items)
        self.denoiser = Denoiser(width, cfg)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` interactions -> the diffused space ``(B, W)``."""
        if not self.latent:
            return x
        z: torch.Tensor = torch.tanh(self.encoder(F.normalize(x, dim=-1)))
        return z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.decoder(z) if self.latent else z  # (B, N)
        return out


class DiffRec(TorchRecommender[DiffRecNet]):
    name: ClassVar[str] = "diffusion"
    Config = DiffRecConfig
    config: DiffRecConfig

    def __init__(self, config: ModelConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.schedule = Schedule(self.config)

    def build_net(self) -> DiffRecNet:
        return DiffRecNet(self.n_items, self.config)

    # -------------------------------------------------------------- training
    def setup(self, train: Interactions, seed: int) -> None:
        cfg: DiffRecConfig = self.config
        self.net = self.build_net().to(self.torch_device)
        self.optimizer = torch.optim.Adam(
            self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.generator = torch.Generator().manual_seed(seed)
        matrix = train.matrix()
        rows = np.flatnonzero(np.diff(matrix.indptr) > 0)
        self.train_matrix = matrix[rows].tocsr()  # (U', N)
        self.loss_history: list[deque[float]] = [
            deque(maxlen=cfg.history_per_step) for _ in range(cfg.steps)
        ]

    def sample_steps(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps ``(B,)`` and their importance weights ``1 / (T p_t)``."""
        cfg: DiffRecConfig = self.config
        full = all(len(h) == cfg.history_per_step for h in self.loss_history)
        if cfg.importance_sampling and full:
            rms = np.array([np.sqrt(np.mean(np.square(h))) for h in self.loss_history])
            p = rms / rms.sum()
            p = 0.9 * p + 0.1 / cfg.steps  # keep every step reachable
        else:
            p = np.full(cfg.steps, 1.0 / cfg.steps)
        probs = torch.tensor(p, dtype=torch.float32)
        t = torch.multinomial(probs, size, replacement=True, generator=self.generator)
        return t, 1.0 / (cfg.steps * probs[t])

    def train_epoch(self, epoch: int) -> float:
        cfg: DiffRecConfig = self.config
        net = self._require_net()
        net.train()
        optimizer = self._require_optimizer()
        device = self.torch_device
        sched = self.schedule
        n: int = self.train_matrix.shape[0]
        order = torch.randperm(n, generator=self.generator).numpy()
        total = 0.0
        for start in range(0, n, cfg.batch_size):
            rows = order[start : start + cfg.batch_size]
            x0 = torch.from_numpy(self.train_matrix[rows].toarray())  # (B, N)
            x0 = x0.to(device)
            z0 = net.encode(x0)  # (B, W)
            t, iw = self.sample_steps(len(rows))
            noise = torch.randn(z0.shape, generator=self.generator).to(device)
            target = z0.detach() if net.latent else z0
            zt = sched.q_sample(target, t, noise)  # (B, W)
            z0_hat = net.denoiser(zt, t.to(device))  # (B, W)
            mse = (z0_hat - target).pow(2).mean(dim=-1)  # (B,)
            weight = sched.loss_weight[t] if cfg.reweight else torch.ones_like(iw)
            per_user = weight.to(device) * mse
            losses = per_user.detach().cpu().tolist()
            for step, value in zip(t.tolist(), losses, strict=True):
                self.loss_history[step].append(value)
            loss = (per_user * iw.to(device)).mean()
            if net.latent:
                recon = net.decode(z0)  # (B, N)
                loss = loss - (F.log_softmax(recon, dim=-1) * x0).sum(-1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        return total / max(n, 1)

    # --------------------------------------------------------------- scoring
    def denoise(self, x0: torch.Tensor) -> torch.Tensor:
        """Reverse process from the ``sampling_steps``-noised input; ``(B, N)``."""
        cfg: DiffRecConfig = self.config
        net = self._require_net()
        sched = self.schedule
        z = net.encode(x0)  # (B, W)
        steps = cfg.sampling_steps
        if steps > 0:
            t = torch.full((len(z),), steps - 1, dtype=torch.long)
            noise = None
            if cfg.inference_noise:
                gen = torch.Generator().manual_seed(0)
                noise = torch.randn(z.shape, generator=gen).to(z.device)
            z = sched.q_sample(z, t, noise)
        for step in range(max(steps, 1) - 1, -1, -1):
            t = torch.full((len(z),), step, dtype=torch.long, device=z.device)
            z0_hat = net.denoiser(z, t)  # (B, W)
            if step == 0:
                z = z0_hat
            else:  # posterior mean of q(x_{t-1} | x_t, x0_hat), no sampling noise
                z = sched.c0[step] * z0_hat + sched.ct[step] * z
        return net.decode(z)

    def _score(self, histories: list[History]) -> np.ndarray:
        net = self._require_net()
        net.eval()
        x = histories_matrix(histories, self.n_items).toarray()  # (B, N)
        with torch.no_grad():
            scores = self.denoise(torch.from_numpy(x).to(self.torch_device))
        return scores.float().cpu().numpy()

    def item_embeddings(self) -> np.ndarray | None:
        net = self._require_net()
        last = net.decoder if net.latent else cast(nn.Linear, net.denoiser.up[-1])
        return last.weight.detach().cpu().numpy().copy()  # (N, H)

    # ------------------------------------------------------------------ onnx
    def export_onnx(self, path: str | Path) -> Path:
        """Export the reverse process ``x (B, N) [, noise (B, W)] -> scores (B, N)``.

        ``noise`` is an input only when ``inference_noise`` and
        ``sampling_steps > 0`` (drawn by :meth:`onnx_feeds` from the same
        seeded generator as :meth:`denoise`). Batch is a dynamic axis; the
        ``sampling_steps`` denoising steps are unrolled.
        """
        module = _DiffRecScores(self)
        example = [torch.zeros(2, self.n_items)]
        names = ["x"]
        if module.noisy:
            example.append(torch.zeros(2, module.width))
            names.append("noise")
        return export_module(
            self,
            module,
            example,
            path,
            input_names=names,
            dynamic_axes={name: {0: "batch"} for name in names},
        )

    def onnx_feeds(
        self, histories: list[History], candidates: np.ndarray | None
    ) -> OnnxFeeds:
        """The binary history matrix (and the inference noise, when drawn)."""
        cfg: DiffRecConfig = self.config
        x = histories_matrix(histories, self.n_items).toarray()  # (B, N)
        inputs = {"x": x.astype(np.float32)}
        if cfg.inference_noise and cfg.sampling_steps > 0:
            width = cfg.latent_dim if cfg.latent_dim is not None else self.n_items
            gen = torch.Generator().manual_seed(0)
            inputs["noise"] = torch.randn((len(x), width), generator=gen).numpy()
        return OnnxFeeds(inputs)


class _DiffRecScores(nn.Module):
    """The exported graph: :meth:`DiffRec.denoise` with the step tensors built
    from the input's batch size (``torch.full`` with ``len()`` would freeze it)."""

    def __init__(self, model: DiffRec) -> None:
        super().__init__()
        cfg: DiffRecConfig = model.config
        self.net = model._require_net()
        self.sched = model.schedule
        self.steps = cfg.sampling_steps
        self.noisy = cfg.inference_noise and cfg.sampling_steps > 0
        self.width = cfg.latent_dim if cfg.latent_dim is not None else model.n_items

    def forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        sched = self.sched
        z = self.net.encode(x)  # (B, W)
        if self.steps > 0:
            a = sched.abar[self.steps - 1]
            z = a.sqrt() * z
            if noise is not None:
                z = z + (1 - a).sqrt() * noise
        for step in range(max(self.steps, 1) - 1, -1, -1):
            t = torch.full_like(z[:, 0], step, dtype=torch.long)  # (B,)
            z0_hat = self.net.denoiser(z, t)  # (B, W)
            if step == 0:
                z = z0_hat
            else:
                z = sched.c0[step] * z0_hat + sched.ct[step] * z
        return self.net.decode(z)  # (B, N)
