"""Serving pipeline: retrieval -> ranking -> reranking (see README.md here).

Framework-free and I/O-free inside the stages; the caller loads models,
indexes and metadata and hands them in.
"""

from recommendations.engine.pipeline.ann import (
    AnnConfig,
    AnnIndex,
    PoincareAnnIndex,
    recall_at_k,
)
from recommendations.engine.pipeline.content import ContentConfig, ContentModel
from recommendations.engine.pipeline.items import ItemMetadata
from recommendations.engine.pipeline.pipeline import (
    PipelineResult,
    RecommendationPipeline,
    RecommendationRequest,
)
from recommendations.engine.pipeline.ranking import (
    ContentFallbackScorer,
    RankedCandidates,
    Ranker,
    RankingConfig,
)
from recommendations.engine.pipeline.reranking import (
    Boost,
    RerankConfig,
    Reranked,
    RerankedItem,
    Reranker,
)
from recommendations.engine.pipeline.retrieval import (
    Candidates,
    CandidateSource,
    RetrievalConfig,
    Retriever,
    ann_source,
    content_source,
    graph_source,
    popularity_order,
    sequence_source,
)

__all__ = [
    "AnnConfig", "AnnIndex", "Boost", "CandidateSource", "Candidates",
    "ContentConfig", "ContentFallbackScorer", "ContentModel", "ItemMetadata",
    "PipelineResult", "PoincareAnnIndex", "RankedCandidates", "Ranker",
    "RankingConfig", "RecommendationPipeline", "RecommendationRequest",
    "Reranked", "RerankedItem", "Reranker", "RerankConfig", "RetrievalConfig",
    "Retriever", "ann_source", "content_source", "graph_source",
    "popularity_order", "recall_at_k", "sequence_source",
]  # fmt: skip
