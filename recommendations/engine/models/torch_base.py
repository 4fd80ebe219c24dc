"""Shared plumbing of the PyTorch models: device, state round trip, scoring mode."""

from __future__ import annotations

import logging
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from torch import nn

from recommendations.engine.errors import ConfigError, NotFittedError
from recommendations.engine.models.base import IterativeRecommender

logger = logging.getLogger(__name__)

NetT = TypeVar("NetT", bound=nn.Module)


def resolve_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        logger.warning("cuda requested but not available, using cpu")
        return torch.device("cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"unknown device {device!r}; use 'cpu' or 'cuda'")
    return torch.device(device)


class TorchRecommender(IterativeRecommender, Generic[NetT]):
    """An iterative model whose parameters live in ``self.net`` (a ``NetT``)."""

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.net: NetT | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.generator: torch.Generator | None = None

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def build_net(self) -> NetT:
        """Create the network for ``self.n_items`` / ``self.n_users``."""
        raise NotImplementedError

    def _require_net(self) -> NetT:
        if self.net is None:
            raise NotFittedError(f"{self.name} is not fitted")
        return self.net

    def _require_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser :meth:`setup` built (training only)."""
        if self.optimizer is None:
            raise NotFittedError(f"{self.name} is not set up for training")
        return self.optimizer

    def get_state(self) -> dict[str, np.ndarray]:
        net = self._require_net()
        return {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        if self.net is None:
            self.net = self.build_net().to(self.torch_device)
        tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}
        self.net.load_state_dict(tensors)
        self.after_state_change()

    def after_state_change(self) -> None:
        """Hook: refresh caches derived from the parameters."""

    def item_embeddings(self) -> np.ndarray | None:
        return None
