"""Reranking stage: each boost of the table exactly, MMR, reasons."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.engine.data.interactions import History
from recommendations.engine.pipeline.items import ItemMetadata
from recommendations.engine.pipeline.ranking import RankedCandidates
from recommendations.engine.pipeline.reranking import (
    RerankConfig,
    Reranker,
    intra_list_diversity,
    minmax,
    mmr,
)

# idx: title, year, genres, directors, collection, lead cast, vote avg, votes
TABLE = [
    ("Alpha One", 2000, ["Action"], [100], 1, [200, 201, 202], 8.0, 100),
    ("Beta", 1990, ["Drama"], [101], None, [203], 6.0, 10),
    ("Alpha Two", 2003, ["Action"], [102], 1, [], 6.0, 10),  # franchise + era
    ("Gamma", 2020, ["Drama"], [101], None, [], 6.0, 10),  # director
    ("Delta", 1985, ["Horror"], [], None, [], 6.0, 10),  # no shared genre
    ("Epsilon", 2001, ["Action"], [], None, [], 7.5, 60),  # quality + era
    ("Zeta", 2001, ["Action"], [], None, [], 7.5, 40),  # too few votes: era only
    ("Eta", 2012, ["Action"], [], None, [], 6.9, 500),  # below 7.0: nothing
    ("Theta", None, ["Comedy"], [], None, [], None, None),  # no genre shared
    ("Iota", 1999, ["Drama"], [], None, [200, 210], 6.0, 10),  # cast + era
    ("Kappa", 2000, [], [], None, [], 6.0, 10),  # no genres: no penalty; era
]
HISTORY = History(np.array([1, 0]))  # Beta, then Alpha One (most recent)
EXPECTED = {  # item -> {boost: value}
    2: {"franchise": 0.25, "era": 0.03},
    3: {"director": 0.10},
    4: {"no_genre": -0.15},
    5: {"quality": 0.02, "era": 0.03},
    6: {"era": 0.03},
    7: {},
    8: {"no_genre": -0.15},
    9: {"era": 0.03},
    10: {"era": 0.03},
}


def table_meta() -> ItemMetadata:
    cols = list(zip(*TABLE, strict=True))
    return ItemMetadata.build(
        cols[0], years=cols[1], genres=cols[2], directors=cols[3],
        collections=cols[4], cast=cols[5], vote_average=cols[6], vote_count=cols[7],
        person_names={200: "Ann Lead"}, collection_names={1: "Alpha"},
    )  # fmt: skip


def ranked(items: list[int], scores: list[float], sources=None) -> RankedCandidates:
    src = sources or [frozenset({"ann"})] * len(items)
    return RankedCandidates(
        np.array(items), np.array(scores, dtype=float), tuple(src),
        "ensemble", False, 0.0,
    )  # fmt: skip


def test_each_boost_is_applied_exactly_as_the_table_says() -> None:
    reranker = Reranker(table_meta())
    items = sorted(EXPECTED)
    out = reranker.rerank(HISTORY, ranked(items, [1.0] * len(items)), n=len(items))
    got = {r.item: {b.name: b.value for b in r.boosts} for r in out.items}
    assert got == EXPECTED
    for r in out.items:  # equal ranking scores -> relevance 1, score = 1 + boosts
        assert r.relevance == 1.0
        assert r.score == pytest.approx(1.0 + sum(EXPECTED[r.item].values()))


def test_boosts_are_added_to_min_max_normalised_scores_and_reorder() -> None:
    reranker = Reranker(table_meta())
    # raw scores 10 / 20 / 30: normalised 0, 0.5, 1
    out = reranker.rerank(HISTORY, ranked([2, 7, 4], [10.0, 20.0, 30.0]), n=3)
    by_item = {r.item: r for r in out.items}
    assert by_item[2].relevance == 0.0 and by_item[2].score == pytest.approx(0.28)
    assert by_item[7].relevance == 0.5 and by_item[7].score == pytest.approx(0.5)
    assert by_item[4].score == pytest.approx(0.85)
    assert [r.item for r in out.items] == [4, 7, 2]
    # a franchise match lifts a slightly weaker candidate above a stronger one
    out = reranker.rerank(HISTORY, ranked([7, 2, 4], [1.0, 0.9, 0.0]), n=3)
    assert [r.item for r in out.items] == [2, 7, 4]


def test_boost_values_and_quality_thresholds_are_config() -> None:
    cfg = RerankConfig(
        franchise_boost=1.0, quality_min_average=6.0, quality_min_votes=0
    )
    out = Reranker(table_meta(), config=cfg).rerank(
        HISTORY, ranked([2, 7], [1.0, 1.0]), n=2
    )
    got = {r.item: {b.name: b.value for b in r.boosts} for r in out.items}
    assert got[2] == {"franchise": 1.0, "era": 0.03, "quality": 0.02}
    assert got[7] == {"quality": 0.02}


def test_reasons_name_real_history_items() -> None:
    meta = table_meta()
    items = sorted(EXPECTED)
    out = Reranker(meta).rerank(HISTORY, ranked(items, [1.0] * len(items)), n=20)
    reasons = {r.item: r.reason for r in out.items}
    assert reasons[2] == "From the Alpha collection, like Alpha One"
    assert reasons[3] == "Same director as Beta"
    assert reasons[9] == "Shares cast with Alpha One"
    assert reasons[5] == "Because you watched Alpha One"
    for r in out.items:
        assert r.anchor in HISTORY.items.tolist()
        assert meta.titles[r.anchor] in r.reason


def test_popular_only_candidates_and_cold_start_say_popular() -> None:
    reranker = Reranker(table_meta())
    src = [frozenset({"popular"}), frozenset({"popular", "ann"})]
    out = reranker.rerank(HISTORY, ranked([7, 6], [1.0, 0.5], src), n=2)
    assert [r.reason for r in out.items] == [
        "Popular right now",
        "Because you watched Alpha One",
    ]
    cold = reranker.rerank(History(np.zeros(0)), ranked([5, 7], [1.0, 0.5]), n=2)
    assert [r.reason for r in cold.items] == ["Popular right now"] * 2
    assert {b.name for b in cold.items[0].boosts} == {"quality"}  # needs no history


def test_mmr_known_answer() -> None:
    sim = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    rel = np.array([1.0, 0.9, 0.5])
    # lam 0.5: item 1 -> 0.45 - 0.5 = -0.05, item 2 -> 0.25 - 0 = 0.25
    assert mmr(rel, sim, 3, 0.5).tolist() == [0, 2, 1]
    assert mmr(rel, sim, 3, 1.0).tolist() == [0, 1, 2]


def _clustered(n_clusters: int = 4, per: int = 10) -> tuple[ItemMetadata, np.ndarray]:
    names = ["Action", "Drama", "Horror", "Comedy", "War"]
    genres = [[names[i // per]] for i in range(n_clusters * per)]
    meta = ItemMetadata.build([f"m{i}" for i in range(len(genres))], genres=genres)
    # relevance: the whole first cluster beats everything else
    scores = np.linspace(1.0, 0.0, len(genres))
    return meta, scores


def test_mmr_increases_intra_list_diversity_and_zero_keeps_order() -> None:
    meta, scores = _clustered()
    items = np.arange(len(scores))
    reranker = Reranker(meta)
    history = History(np.zeros(0))
    plain = reranker.rerank(history, ranked(items.tolist(), scores.tolist()), n=8)
    order = [r.item for r in plain.items]
    assert order == list(range(8))  # diversity 0: relevance order
    ild = [intra_list_diversity(np.array(order), meta.genre_similarity)]
    for div in (0.3, 0.7):
        out = reranker.rerank(
            history, ranked(items.tolist(), scores.tolist()), n=8, diversity=div
        )
        ild.append(
            intra_list_diversity(
                np.array([r.item for r in out.items]), meta.genre_similarity
            )
        )
    assert ild[0] == 0.0
    assert ild[1] > ild[0] and ild[2] >= ild[1]
    with pytest.raises(ValueError):
        reranker.rerank(history, ranked([0], [1.0]), n=1, diversity=1.5)


def test_minmax_edge_cases() -> None:
    assert minmax(np.array([2.0, 2.0])).tolist() == [1.0, 1.0]
    assert minmax(np.array([1.0, -np.inf, 3.0])).tolist() == [0.0, 0.0, 1.0]
