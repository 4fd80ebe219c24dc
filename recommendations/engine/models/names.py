"""Registered model names and where their classes live (data, no model imports).

Adding a model is one line in :data:`MODELS`; the shared contract tests, the
trainer, the evaluator and the CLI pick it up. The classes are imported on
first use (torch only when a torch model is asked for): through
:func:`~recommendations.engine.models.registry.get_model_class`, or
:meth:`Recommender.load <recommendations.engine.models.base.Recommender.load>`
for a saved model. This module sits below both, so neither imports the other.
"""

from __future__ import annotations

import importlib

from recommendations.engine.errors import ConfigError

__all__ = ["MODELS", "import_model_class", "model_names"]

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


def import_model_class(name: str) -> type:
    """The class registered as ``name``; an unknown name raises ``ConfigError``."""
    try:
        module_name, _, attr = MODELS[name].partition(":")
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; registered: {', '.join(MODELS)}"
        ) from None
    cls: type = getattr(importlib.import_module(module_name), attr)
    return cls
