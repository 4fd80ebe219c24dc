"""APEX recommender engine: framework-free data, models, training and evaluation.

Importing this package must stay cheap and must never import Django (a test
checks it): heavy modules (torch) are imported by the model modules that need
them, not here.
"""

from recommendations.engine.errors import (
    ConfigError,
    DataError,
    EngineError,
    EngineErrorCode,
    MalformedRowError,
    NotFittedError,
    UnknownItemError,
    UnknownUserError,
)

__all__ = [
    "ConfigError",
    "DataError",
    "EngineError",
    "EngineErrorCode",
    "MalformedRowError",
    "NotFittedError",
    "UnknownItemError",
    "UnknownUserError",
]
