"""FAISS search: exact and HNSW recall against numpy, save/load, hyperbolic lift."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from recommendations.engine.errors import DataError
from recommendations.engine.pipeline.ann import (
    AnnConfig,
    AnnIndex,
    PoincareAnnIndex,
    exact_top_k,
    lift_items,
    lift_queries,
    logmap0,
    poincare_distance,
    recall_at_k,
)

faiss.omp_set_num_threads(1)


def _vectors(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_flat_index_is_exact_and_auto_picks_by_size() -> None:
    items, users = _vectors(500, 16, 0), _vectors(20, 16, 1)
    index = AnnIndex.build(items, AnnConfig(exact_max_items=1000))
    assert index.kind == "exact"
    ids, _ = index.search_batch(users, 50)
    assert recall_at_k(ids, exact_top_k(users @ items.T, 50)) == 1.0
    assert AnnIndex.build(items, AnnConfig(exact_max_items=100)).kind == "hnsw"


def test_hnsw_recall_at_100_against_exact_search() -> None:
    items, users = _vectors(3000, 32, 2), _vectors(50, 32, 3)
    cfg = AnnConfig(kind="hnsw", hnsw_m=16, ef_construction=80, ef_search=200)
    index = AnnIndex.build(items, cfg)
    ids, _ = index.search_batch(users, 100)
    recall = recall_at_k(ids, exact_top_k(users @ items.T, 100))
    assert 0.9 <= recall <= 1.0
    # a weaker beam finds less: the recall measure is not constant
    index.index.hnsw.efSearch = 100
    weak = recall_at_k(
        index.search_batch(users, 100)[0], exact_top_k(users @ items.T, 100)
    )
    assert weak <= recall


def test_l2_reduction_keeps_inner_product_scores_and_recall() -> None:
    rng = np.random.default_rng(10)
    # norms spread over two orders of magnitude
    items = _vectors(2000, 16, 11) * rng.uniform(0.05, 5.0, size=(2000, 1))
    users = _vectors(40, 16, 12)
    exact = exact_top_k(users @ items.T, 100)
    cfg = AnnConfig(kind="hnsw", hnsw_m=16, ef_construction=80, l2_reduction=True)
    index = AnnIndex.build(items, cfg)
    assert index.dim == 16
    ids, scores = index.search_batch(users, 100)
    assert recall_at_k(ids, exact) >= 0.9
    expected = np.take_along_axis(users @ items.T, ids, axis=1)
    np.testing.assert_allclose(scores, expected, rtol=1e-3, atol=1e-2)


def test_recall_at_k_counts_overlap() -> None:
    assert recall_at_k(np.array([[1, 2, 3, 4]]), np.array([[1, 2, 5, 6]])) == 0.5
    assert recall_at_k(np.array([[1, -1]]), np.array([[1, 2]])) == 0.5


def test_search_excludes_seen_items_and_round_trips(tmp_path: Path) -> None:
    items, user = _vectors(300, 8, 4), _vectors(1, 8, 5)[0]
    for kind, l2 in (("exact", False), ("hnsw", False), ("hnsw", True)):
        index = AnnIndex.build(items, AnnConfig(kind=kind, l2_reduction=l2))
        full, _ = index.search(user, 20)
        seen = full[:5]
        ids, scores = index.search(user, 20, exclude=seen)
        assert len(ids) == 20 and not np.isin(ids, seen).any()
        assert ids[:15].tolist() == full[5:].tolist()
        assert np.all(np.diff(scores) <= 1e-6)
        index.save(tmp_path / f"{kind}{l2}")
        loaded = AnnIndex.load(tmp_path / f"{kind}{l2}")
        assert loaded.kind == kind and loaded.max_norm == index.max_norm
        again, again_scores = loaded.search(user, 20, seen)
        np.testing.assert_array_equal(again, ids)
        np.testing.assert_array_equal(again_scores, scores)
    with pytest.raises(DataError):
        AnnIndex.load(tmp_path / "missing")


def _ball(n: int, d: int, seed: int) -> np.ndarray:
    """Points spread from the centre to near the boundary of the unit ball."""
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal((n, d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return direction * rng.uniform(0.0, 0.95, size=(n, 1))


def test_poincare_lift_turns_distance_into_inner_product() -> None:
    items, users = _ball(400, 8, 6), _ball(10, 8, 7)
    for c in (1.0, 0.5):
        dist = poincare_distance(users, items, c)
        lifted = lift_queries(users) @ lift_items(items, c).T
        # the same ranking: a monotone decreasing function of the distance
        for row_d, row_s in zip(dist, lifted, strict=True):
            assert np.array_equal(np.argsort(row_d), np.argsort(-row_s))


def test_poincare_index_recall_at_100_vs_exact_distance() -> None:
    items, users = _ball(2000, 16, 8), _ball(30, 16, 9)
    exact = np.argsort(poincare_distance(users, items), axis=1)[:, :100]
    index = PoincareAnnIndex(items)
    got = np.stack([index.search(u, 100)[0] for u in users])
    assert recall_at_k(got, exact) >= 0.999
    ids, dist = index.search(users[0], 10)
    np.testing.assert_allclose(dist, poincare_distance(users[0], items[ids])[0])
    # the tangent-space shortcut is only approximate (measured by the benchmark)
    tangent = exact_top_k(-_sqdist(logmap0(users), logmap0(items)), 100)
    assert recall_at_k(tangent, exact) < 1.0
    with pytest.raises(DataError):
        PoincareAnnIndex(np.array([[1.0, 0.0]]))


def test_poincare_hnsw_recall_with_reduction_and_rescoring() -> None:
    items, users = _ball(3000, 16, 13), _ball(30, 16, 14)
    exact = np.argsort(poincare_distance(users, items), axis=1)[:, :100]
    cfg = AnnConfig(kind="hnsw", hnsw_m=16, ef_construction=80, ef_search=400)
    index = PoincareAnnIndex(items, config=cfg)
    assert index.ann.kind == "hnsw" and index.ann.max_norm is not None
    got = np.stack([index.search(u, 100)[0] for u in users])
    assert recall_at_k(got, exact) >= 0.9


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
