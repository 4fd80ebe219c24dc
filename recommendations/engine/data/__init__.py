"""Data: MovieLens reader, interactions container, splits, synthetic generator."""

from recommendations.engine.data.interactions import (
    History,
    Interactions,
    Vocabulary,
    as_histories,
)
from recommendations.engine.data.splits import (
    EvalTask,
    Split,
    global_temporal,
    leave_one_out,
    make_split,
)

__all__ = [
    "EvalTask",
    "History",
    "Interactions",
    "Split",
    "Vocabulary",
    "as_histories",
    "global_temporal",
    "leave_one_out",
    "make_split",
]
