"""The JVM-free gold reader: what the engine trains on equals the direct loader.

The first tests write gold tables with ``deltalake`` alone (no Spark); the
ML-100K test runs the real Spark pipeline (bronze -> silver -> gold) and
compares its output, read back without a JVM, with
``Interactions.from_movielens(load_movielens(...))``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from recommendations.engine.data.gold import load_interactions, read_events
from recommendations.engine.data.interactions import Interactions
from recommendations.engine.errors import DataError

ROOT = Path(__file__).resolve().parents[3]


def _write_gold(lake: Path) -> None:
    from deltalake import write_deltalake

    sequences = pa.table(
        {
            "user_id": pa.array([20, 10], pa.int64()),
            "item_ids": pa.array([[7], [5, 3, 7]], pa.list_(pa.int64())),
            "timestamps": pa.array([[50], [100, 200, 200]], pa.list_(pa.int64())),
            "ratings": pa.array([[2.0], [4.0, None, 5.0]], pa.list_(pa.float64())),
            "kinds": pa.array(
                [["rating"], ["rating", "click", "rating"]], pa.list_(pa.string())
            ),
        }
    )
    write_deltalake(str(lake / "gold" / "user_sequences"), sequences)
    features = pa.table(
        {
            "item_id": pa.array([3, 5, 7, 9], pa.int64()),
            "title": ["Three", "Five", "Seven", "Nine"],
            "year": pa.array([1990, None, 1995, 2000], pa.int32()),
            "genres": pa.array([["Drama"], [], ["Action", "Drama"], None]),
        }
    )
    write_deltalake(str(lake / "gold" / "item_features"), features)


def test_sequences_flatten_to_aligned_events(tmp_path: Path) -> None:
    _write_gold(tmp_path)
    events = read_events(tmp_path)
    assert events["user_id"].tolist() == [20, 10, 10, 10]
    assert events["item_id"].tolist() == [7, 5, 3, 7]
    assert events["timestamp"].tolist() == [50, 100, 200, 200]
    assert events["kind"].tolist() == ["rating", "rating", "click", "rating"]
    assert np.isnan(events["rating"].iloc[2])
    ratings_only = read_events(tmp_path, kinds=["rating"])
    assert ratings_only["item_id"].tolist() == [7, 5, 7]


def test_the_container_gets_vocabularies_order_and_features(tmp_path: Path) -> None:
    _write_gold(tmp_path)
    data = load_interactions(tmp_path, kinds=["rating"])
    assert data.users.ids.tolist() == [10, 20]
    assert data.items.ids.tolist() == [5, 7]  # item 3 was only clicked
    assert data.items.id_of(data.sequence(0)).tolist() == [5, 7]
    assert data.item_features["title"].tolist() == ["Five", "Seven"]
    assert data.item_features["year"].isna().tolist() == [True, False]
    assert data.item_features["genres"].tolist() == [[], ["Action", "Drama"]]


def test_a_lake_without_gold_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="python -m etl run"):
        load_interactions(tmp_path)


def _ml100k_folder() -> Path:
    """ML-100K in its GroupLens layout: $APEX_ML100K_PATH, the shared data folder
    next to the repository, the engine's cache, or a verified download."""
    from recommendations.engine.data.movielens import default_cache_dir, fetch_grouplens

    for candidate in (
        os.environ.get("APEX_ML100K_PATH"),
        ROOT.parent / "shared" / "data" / "ml-100k",
        default_cache_dir() / "ml-100k",
    ):
        if candidate and (Path(candidate) / "u.data").is_file():
            return Path(candidate)
    return fetch_grouplens("ml-100k", default_cache_dir())


@pytest.mark.spark
@pytest.mark.slow
def test_gold_from_ml100k_equals_the_direct_loader(tmp_path: Path) -> None:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from etl import pipeline
    from etl.lake import Lake
    from etl.spark import SparkSettings, build_spark
    from recommendations.engine.data.movielens import load_movielens

    folder = _ml100k_folder()
    spark = build_spark(
        SparkSettings.from_env(master="local[2]", shuffle_partitions=2)
    )  # returns the ETL tests' session when one is running
    pipeline.run(spark, Lake(str(tmp_path / "lake")), sources=[str(folder)])

    gold = load_interactions(tmp_path / "lake", name="ml-100k")
    direct = Interactions.from_movielens(
        load_movielens("ml-100k", path=folder, sources=("path",))
    )
    assert gold.describe() == direct.describe() == {
        "name": "ml-100k", "users": 943, "items": 1682, "interactions": 100_000,
        "ties": "random", "tie_seed": 0,
    }  # fmt: skip
    assert gold.users == direct.users and gold.items == direct.items
    for name in ("user_index", "item_index", "ratings", "timestamps"):
        got, want = getattr(gold, name), getattr(direct, name)
        assert got.dtype == want.dtype and np.array_equal(got, want), name
    for column in ("title", "year"):
        assert gold.item_features[column].equals(direct.item_features[column]), column
    assert (
        gold.item_features["genres"].tolist() == direct.item_features["genres"].tolist()
    )
