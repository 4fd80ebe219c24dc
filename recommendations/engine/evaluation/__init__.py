"""Evaluation: full-ranking and sampled metrics, beyond-accuracy, paired tests."""

from recommendations.engine.evaluation.beyond import beyond_accuracy, gini, top_k
from recommendations.engine.evaluation.evaluator import (
    EvaluationResult,
    evaluate,
    validation_ndcg,
)
from recommendations.engine.evaluation.metrics import (
    KS,
    metrics_from_ranks,
    ranking_metrics,
    sample_negatives,
    target_ranks,
)
from recommendations.engine.evaluation.stats import (
    mean_ci,
    paired_bootstrap,
    paired_ttest,
)

__all__ = [
    "KS",
    "EvaluationResult",
    "beyond_accuracy",
    "evaluate",
    "gini",
    "mean_ci",
    "metrics_from_ranks",
    "paired_bootstrap",
    "paired_ttest",
    "ranking_metrics",
    "sample_negatives",
    "target_ranks",
    "top_k",
    "validation_ndcg",
]
