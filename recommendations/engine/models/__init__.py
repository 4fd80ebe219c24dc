"""Recommender models: one file per model, all behind :class:`Recommender`."""

from recommendations.engine.models.base import (
    IterativeRecommender,
    ModelConfig,
    Recommender,
)
from recommendations.engine.models.registry import (
    MODELS,
    create_model,
    get_model_class,
    model_names,
)

__all__ = [
    "MODELS",
    "IterativeRecommender",
    "ModelConfig",
    "Recommender",
    "create_model",
    "get_model_class",
    "model_names",
]
