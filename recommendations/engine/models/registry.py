"""Model registry: name -> class, imported lazily (torch only when needed).

Adding a model is one line here; the shared contract tests, the trainer, the
evaluator and the CLI pick it up from this table.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from recommendations.engine.errors import ConfigError

if TYPE_CHECKING:
    from recommendations.engine.models.base import Recommender

MODELS: dict[str, str] = {
    "pop": "recommendations.engine.models.pop:Popularity",
    "itemknn": "recommendations.engine.models.itemknn:ItemKNN",
    "ease": "recommendations.engine.models.ease:EASE",
    "sasrec": "recommendations.engine.models.sasrec:SASRec",
    "lightgcn": "recommendations.engine.models.lightgcn:LightGCN",
    "kan": "recommendations.engine.models.kan:KAN",
    "neural_ode": "recommendations.engine.models.neural_ode:NeuralODE",
    "quantum_fluid": "recommendations.engine.models.neural_ode:QuantumFluid",
    "diffusion": "recommendations.engine.models.diffusion:DiffRec",
    "hyperbolic": "recommendations.engine.models.hyperbolic:Hyperbolic",
    "ensemble": "recommendations.engine.models.ensemble:Ensemble",
}


def model_names() -> list[str]:
    return list(MODELS)


def get_model_class(name: str) -> type[Recommender]:
    try:
        module_name, _, attr = MODELS[name].partition(":")
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; registered: {', '.join(MODELS)}"
        ) from None
    return getattr(importlib.import_module(module_name), attr)


def create_model(name: str, **config: object) -> Recommender:
    return get_model_class(name)(**config)
