"""Training profiles: ``quick`` (minutes on a laptop CPU) and ``full``.

A profile sets the trainer defaults below; each model config may refine them
(``ModelConfig.TRAINER_PROFILES``) and its own hyperparameters
(``ModelConfig.PROFILES``).
"""

from __future__ import annotations

from typing import Any

from recommendations.engine.errors import ConfigError
from recommendations.engine.models.base import ModelConfig, Recommender
from recommendations.engine.training.trainer import TrainerConfig

PROFILES: dict[str, dict[str, Any]] = {
    # quick: every model trains in <= 3 minutes on ML-100K with 2 CPU cores
    "quick": {"max_epochs": 100, "patience": 5, "time_budget_s": 170.0},
    # full: no early cut-off by time except a 15-minute safety net
    "full": {"max_epochs": 400, "patience": 15, "time_budget_s": 900.0},
}


def trainer_config(
    model_cls: type[Recommender], profile: str, **overrides: Any
) -> TrainerConfig:
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; use one of {sorted(PROFILES)}")
    settings = {
        **PROFILES[profile],
        **model_cls.Config.TRAINER_PROFILES.get(profile, {}),
    }
    return TrainerConfig(**{**settings, **overrides})


def model_config(
    model_cls: type[Recommender], profile: str, **overrides: Any
) -> ModelConfig:
    return model_cls.Config.for_profile(profile, **overrides)
