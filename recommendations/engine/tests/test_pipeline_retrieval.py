"""Retrieval stage: union, tags, seen items removed, failing sources, fallback."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from recommendations.engine.data.interactions import History
from recommendations.engine.pipeline.ann import AnnIndex
from recommendations.engine.pipeline.content import ContentModel
from recommendations.engine.pipeline.items import ItemMetadata
from recommendations.engine.pipeline.retrieval import (
    CandidateSource,
    RetrievalConfig,
    RetrievalRequest,
    Retriever,
    ann_source,
    content_source,
    graph_source,
    popularity_order,
    sequence_source,
)


def fixed(name: str, items: list[int]) -> CandidateSource:
    return CandidateSource(name, lambda request, k: np.array(items)[:k])


def broken(request: RetrievalRequest, k: int) -> np.ndarray:
    raise RuntimeError("index file is corrupt")


HISTORY = History(np.array([0, 1]))


def test_union_is_round_robin_tagged_and_excludes_seen() -> None:
    retriever = Retriever(
        [fixed("a", [0, 5, 6, 7]), fixed("b", [8, 1, 5, 9])],
        config=RetrievalConfig(min_candidates=0),
    )
    out = retriever.retrieve(HISTORY)
    assert out.items.tolist() == [8, 5, 6, 7, 9]  # 0 and 1 are seen
    tags = dict(zip(out.items.tolist(), out.sources, strict=True))
    assert tags[5] == {"a", "b"} and tags[8] == {"b"} and tags[7] == {"a"}
    assert not out.fallback_used and out.failed == {}
    assert out.source_counts() == {"a": 3, "b": 3}
    kept = retriever.retrieve(HISTORY, exclude_seen=False, exclude=np.array([8]))
    assert kept.items.tolist()[:3] == [0, 5, 1]


def test_cap_keeps_the_best_of_every_source() -> None:
    retriever = Retriever(
        [fixed("a", list(range(10, 20))), fixed("b", list(range(20, 30)))],
        config=RetrievalConfig(max_candidates=4, min_candidates=0),
    )
    assert retriever.retrieve(HISTORY).items.tolist() == [10, 20, 11, 21]


def test_a_failing_source_is_skipped_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    retriever = Retriever(
        [CandidateSource("ann", broken), fixed("b", [3, 4])],
        config=RetrievalConfig(min_candidates=0),
    )
    with caplog.at_level(logging.WARNING):
        out = retriever.retrieve(HISTORY)
    assert out.items.tolist() == [3, 4]
    assert out.failed == {"ann": "RuntimeError: index file is corrupt"}
    assert "ann" in caplog.text


def test_popular_items_fill_up_only_when_the_sources_fall_short() -> None:
    popular = popularity_order(np.array([50, 40, 30, 20, 10, 5, 1]))
    cfg = RetrievalConfig(min_candidates=4)
    retriever = Retriever([fixed("a", [6])], popular=popular, config=cfg)
    out = retriever.retrieve(HISTORY)
    assert out.items.tolist() == [6, 2, 3, 4] and out.fallback_used
    assert out.sources[1] == {"popular"}
    enough = Retriever([fixed("a", [2, 3, 4, 5])], popular=popular, config=cfg)
    assert not enough.retrieve(HISTORY).fallback_used
    cold = retriever.retrieve(History(np.zeros(0)))  # no history at all
    assert cold.items.tolist() == [6, 0, 1, 2] and cold.fallback_used
    with pytest.raises(ValueError):
        Retriever([fixed("popular", [1])])


def _meta() -> ItemMetadata:
    return ItemMetadata.build(
        ["Saga I", "Saga II", "Other", "Same Dir", "Cast Mate", "Unrelated"],
        genres=[["SF"], ["SF"], ["SF"], ["Drama"], ["Drama"], ["Horror"]],
        directors=[[1], [2], [3], [1], [4], [5]],
        cast=[[10], [11], [12], [13], [10], [14]],
        collections=[7, 7, None, None, None, None],
    )


def test_graph_source_ranks_collection_then_director_then_cast() -> None:
    source = graph_source(_meta())
    request = RetrievalRequest(History(np.array([0])), exclude=np.array([0]))
    # collection (4 + genre) > director (2) > shared cast (1) > genre only (0.5)
    assert source.fn(request, 10).tolist() == [1, 3, 4, 2]


def test_ann_content_and_sequence_sources() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((30, 4)).astype(np.float32)
    index = AnnIndex.build(vectors)
    mean_vector = lambda h: vectors[h.items].mean(0)  # noqa: E731
    history = History(np.array([3, 4]))
    request = RetrievalRequest(history, exclude=history.items)
    ids = ann_source(index, mean_vector).fn(request, 5)
    expected = np.argsort(-(vectors @ mean_vector(history)))
    assert ids.tolist() == [i for i in expected if i not in (3, 4)][:5]
    given = RetrievalRequest(history, user_vector=vectors[7], exclude=history.items)
    assert (
        ann_source(index).fn(given, 1).tolist()
        == [i for i in np.argsort(-(vectors @ vectors[7])) if i not in (3, 4)][:1]
    )
    content = ContentModel.fit(["space jedi", "space empire jedi", "war romance"])
    req = RetrievalRequest(History(np.array([2, 0])), exclude=np.array([2, 0]))
    assert content_source(content).fn(req, 5).tolist() == [1]
    seq = sequence_source(lambda h, k: np.arange(k) + h.items[-1])
    assert seq.fn(request, 2).tolist() == [4, 5, 6, 7]  # k + seen, filtered later
    assert len(seq.fn(RetrievalRequest(History(np.zeros(0))), 2)) == 0
