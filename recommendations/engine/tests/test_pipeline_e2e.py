"""The composed pipeline on synthetic data with an engine model as the scorer."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.engine.data.interactions import History, Interactions
from recommendations.engine.models.itemknn import ItemKNN
from recommendations.engine.pipeline import (
    AnnIndex,
    CandidateSource,
    ContentFallbackScorer,
    ContentModel,
    ItemMetadata,
    Ranker,
    RankingConfig,
    RecommendationPipeline,
    RecommendationRequest,
    Reranker,
    RetrievalConfig,
    Retriever,
    ann_source,
    content_source,
    graph_source,
    popularity_order,
    sequence_source,
)


def build(data: Interactions, *, threshold: float | None = None, extra=()):
    meta = ItemMetadata.from_interactions(data)
    content = ContentModel.from_metadata(meta)
    knn = ItemKNN(neighbors=20)
    knn.fit(data)
    # SVD item factors: user vector = mean of the history items' factors
    _, _, vt = np.linalg.svd(data.matrix().toarray(), full_matrices=False)
    factors = vt[:8].T.astype(np.float32)
    counts = data.item_counts()

    def next_items(history: History, k: int) -> np.ndarray:
        return np.argsort(-knn.score([history])[0], kind="stable")[:k]

    def score(history: History, candidates: np.ndarray):
        return knn.score([history], candidates=candidates)[0], 0.5

    retriever = Retriever(
        [
            ann_source(AnnIndex.build(factors), lambda h: factors[h.items].mean(0)),
            sequence_source(next_items),
            content_source(content),
            graph_source(meta),
            *extra,
        ],
        popular=popularity_order(counts),
        config=RetrievalConfig(max_candidates=40, min_candidates=20),
    )
    ranker = Ranker(
        score,
        ContentFallbackScorer(content, counts),
        RankingConfig(gate_threshold=threshold),
    )
    return RecommendationPipeline(retriever, ranker, Reranker(meta)), meta


@pytest.fixture(scope="module")
def pipeline(tiny_data: Interactions):
    return build(tiny_data)


def test_served_list_excludes_seen_and_explains_with_history(
    pipeline, tiny_data
) -> None:
    pipe, meta = pipeline
    history = tiny_data.history(3)
    result = pipe.run(RecommendationRequest(history, n=10))
    assert len(result) == 10 and len(set(result.items.tolist())) == 10
    assert not np.isin(result.items, history.items).any()
    assert result.scorer == "ensemble" and not result.gate_fired
    assert 10 <= result.n_candidates <= 40
    assert np.all(np.diff(result.scores) <= 1e-12)  # diversity 0: score order
    for reason, anchor in zip(result.reasons, result.anchors, strict=True):
        assert anchor in history.items.tolist()
        assert meta.titles[anchor] in reason
    assert set(result.timings_ms) == {"retrieval", "ranking", "reranking", "total"}
    assert result.timings_ms["total"] >= result.timings_ms["ranking"] > 0
    seen_ok = pipe.run(RecommendationRequest(history, n=60, exclude_seen=False))
    assert np.isin(seen_ok.items, history.items).any()


def test_diversity_parameter_covers_every_genre_first(pipeline, tiny_data) -> None:
    """With a strong diversity weight MMR takes one item per genre before
    repeating a genre (single-genre synthetic items: similarity 0 or 1)."""
    pipe, meta = pipeline
    n_genres = meta.genres.shape[1]
    covered: dict[float, list[int]] = {0.0: [], 0.9: []}
    available = []
    for user in range(10):
        history = tiny_data.history(user)
        candidates = pipe.retriever.retrieve(history).items
        available.append(len(set(meta.genres[candidates].indices.tolist())))
        for diversity in covered:
            request = RecommendationRequest(history, n=n_genres, diversity=diversity)
            top = pipe.run(request).items
            covered[diversity].append(len(set(meta.genres[top].indices.tolist())))
    assert covered[0.9] == available
    assert sum(covered[0.0]) < sum(covered[0.9])


def test_failing_source_and_gate_and_cold_start(tiny_data) -> None:
    def broken(request, k):
        raise MemoryError("faiss ran out of memory")

    pipe, _ = build(tiny_data, threshold=0.1, extra=[CandidateSource("bad", broken)])
    result = pipe.run(RecommendationRequest(tiny_data.history(3), n=5))
    assert len(result) == 5
    assert result.failed_sources == {"bad": "MemoryError: faiss ran out of memory"}
    assert result.gate_fired and result.scorer == "content" and result.fallback_used
    assert result.disagreement == 0.5
    cold = pipe.run(RecommendationRequest(History(np.zeros(0)), n=5))
    assert cold.fallback_used and set(cold.reasons) == {"Popular right now"}
    top = popularity_order(tiny_data.item_counts())[:5]
    assert sorted(cold.items.tolist()) == sorted(top.tolist())


def test_pipeline_package_does_not_import_django() -> None:
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, recommendations.engine.pipeline; "
        "bad = [m for m in sys.modules if m == 'django' or m.startswith('django.')]; "
        "assert not bad, bad"
    )
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
