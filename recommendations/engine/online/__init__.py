"""Online learning: incremental feature tables and guarded KAN SGD.

See ``learner.py`` for the per-batch protocol and ``tables.py`` for what
each table update does (exact or approximate); ``evaluation/prequential.py``
measures whether it helps.
"""

from recommendations.engine.online.events import OnlineEvent
from recommendations.engine.online.learner import (
    MAX_LR,
    GuardResult,
    ObserveReport,
    OnlineConfig,
    OnlineLearner,
    OnlineSnapshot,
)
from recommendations.engine.online.lightgcn import lightgcn_user_vector
from recommendations.engine.online.tables import OnlineTables, TableUpdate

__all__ = [
    "MAX_LR",
    "GuardResult",
    "ObserveReport",
    "OnlineConfig",
    "OnlineEvent",
    "OnlineLearner",
    "OnlineSnapshot",
    "OnlineTables",
    "TableUpdate",
    "lightgcn_user_vector",
]
