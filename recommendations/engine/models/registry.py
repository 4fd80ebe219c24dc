"""Model registry: name -> class, imported lazily (torch only when needed).

The table itself is :data:`~recommendations.engine.models.names.MODELS`
(adding a model is one line there); this module hands out the classes typed
as :class:`Recommender`.
"""

from __future__ import annotations

from typing import Any

from recommendations.engine.errors import ConfigError
from recommendations.engine.models.base import Recommender
from recommendations.engine.models.names import MODELS, import_model_class, model_names

__all__ = ["MODELS", "create_model", "get_model_class", "model_names"]


def get_model_class(name: str) -> type[Recommender]:
    cls = import_model_class(name)
    if not issubclass(cls, Recommender):
        raise ConfigError(f"model {name!r} ({cls.__name__}) is not a Recommender")
    return cls


def create_model(name: str, **config: Any) -> Recommender:
    return get_model_class(name)(**config)
