"""Training: the trainer (epoch loop, early stopping, checkpoints) and profiles."""

from recommendations.engine.training.trainer import (
    FitReport,
    Trainer,
    TrainerConfig,
    seed_everything,
)

__all__ = ["FitReport", "Trainer", "TrainerConfig", "seed_everything"]
