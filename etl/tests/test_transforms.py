"""Silver and gold transforms as pure DataFrame -> DataFrame functions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pyspark.sql import functions as F

from etl import gold, silver
from etl.contracts import APP_ID_OFFSET

pytestmark = pytest.mark.spark

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 2, tzinfo=UTC)


def test_titles_split_like_the_engine(spark) -> None:
    from recommendations.engine.data.movielens import split_title_year

    raws = [
        "Toy Story (1995)", "unknown", "Shawshank Redemption, The (1994) ",
        "Band Wagon (1953-1954)", "1-900 (1994)", "Stalker (1979) (1979)",
    ]  # fmt: skip
    title, year = silver.split_title(F.col("raw"))
    got = spark.createDataFrame([(r,) for r in raws], "raw string").select(
        "raw", title.alias("t"), year.alias("y")
    )
    assert {r.raw: (r.t, r.y) for r in got.collect()} == {
        r: split_title_year(r) for r in raws
    }


def test_title_keys_ignore_moved_articles_case_and_punctuation(spark) -> None:
    frame = spark.createDataFrame(
        [("Usual Suspects, The",), ("The Usual Suspects",), ("Se7en!",)], "t string"
    )
    keys = [r[0] for r in frame.select(silver.title_key(F.col("t"))).collect()]
    assert keys == ["usualsuspects", "usualsuspects", "se7en"]


def _interactions(spark, rows):
    return spark.createDataFrame(
        rows,
        "event_key string, occurred_at timestamp, _ingested_at timestamp, "
        "_source_file string, _event_seq bigint, rating double",
    )


def test_dedup_keeps_the_latest_event_per_key(spark) -> None:
    frame = _interactions(
        spark,
        [
            ("a", T0, T0, "f1", 1, 1.0),
            ("a", T1, T0, "f1", 2, 2.0),  # later event time wins
            ("b", T0, T0, "f1", 3, 3.0),
            ("b", T0, T1, "f2", 4, 4.0),  # same time: later ingestion wins
            ("c", T0, T0, "f1", 5, 5.0),
            ("c", T0, T0, "f1", 6, 0.5),  # full tie: higher event id wins
        ],
    )
    got = {r.event_key: r.rating for r in silver.dedup_latest(frame).collect()}
    assert got == {"a": 2.0, "b": 4.0, "c": 0.5}


def test_merge_condition_agrees_with_dedup_order() -> None:
    cond = silver.newer_condition()
    assert cond.startswith("(s.occurred_at > t.occurred_at) OR")
    assert "s.occurred_at = t.occurred_at AND s._ingested_at > t._ingested_at" in cond


def test_events_use_movielens_ids_when_known_and_offset_ids_otherwise(spark) -> None:
    events = spark.createDataFrame(
        [
            (1, 7, 42, 11, 5, "rating", 4.0, T0, "web", "k1"),
            (2, 8, None, 12, None, "click", None, T0, "web", "k2"),
        ],
        "event_id bigint, user_id bigint, movielens_user_id bigint, movie_id bigint, "
        "movielens_id bigint, kind string, value double, occurred_at timestamp, "
        "source string, idempotency_key string",
    ).withColumns(
        {"_source_file": F.lit("e.parquet"), "_ingested_at": F.lit(T1),
         "_batch_id": F.lit("b")}
    )  # fmt: skip
    got = silver.events_to_interactions(events).orderBy("event_key").collect()
    assert [(r.user_id, r.item_id, r.rating) for r in got] == [
        (42, 5, 4.0),
        (8 + APP_ID_OFFSET, 12 + APP_ID_OFFSET, None),
    ]
    assert got[0].ts == int(T0.timestamp())


def test_user_sequences_are_time_ordered_with_seeded_random_ties(spark) -> None:
    burst = [(1, item, 3.0, 200, "rating") for item in range(40, 52)]
    frame = spark.createDataFrame(
        [(1, 20, 4.0, 100, "rating"), *burst, (2, 5, 3.0, 50, "rating")],
        "user_id bigint, item_id bigint, rating double, ts bigint, kind string",
    )  # fmt: skip
    got = {r.user_id: r for r in gold.user_sequences(frame).collect()}
    assert got[1].item_ids[0] == 20 and got[1].timestamps[0] == 100
    assert got[1].timestamps[1:] == [200] * 12
    assert (got[1].first_ts, got[1].last_ts, got[2].n_events) == (100, 200, 1)
    tied = got[1].item_ids[1:]
    assert sorted(tied) == list(range(40, 52)) and tied != sorted(tied)
    keys = {
        r.item_id: r.k
        for r in frame.select(
            "item_id", F.xxhash64(F.lit(gold.TIE_SEED), "user_id", "item_id").alias("k")
        ).collect()
    }
    assert tied == sorted(tied, key=keys.__getitem__)
    again = gold.user_sequences(frame.orderBy(F.desc("item_id"))).collect()
    assert {r.user_id: r.item_ids for r in again}[1][1:] == tied
    other = gold.user_sequences(frame, tie_seed=1).collect()
    assert {r.user_id: r.item_ids for r in other}[1][1:] != tied


def test_popularity_and_propensity(spark) -> None:
    frame = spark.createDataFrame(
        [(u, 1, 4.0) for u in range(9)] + [(0, 2, 2.0)],
        "user_id bigint, item_id bigint, rating double",
    )
    got = {r.item_id: r for r in gold.item_popularity(frame).collect()}
    assert (got[1].n_interactions, got[1].popularity, got[1].propensity) == (
        9,
        0.9,
        1.0,
    )
    assert got[2].propensity == pytest.approx(0.30103, abs=1e-4)  # log 2 / log 10


def test_cooccurrence_counts_pairs_inside_the_window(spark) -> None:
    seqs = spark.createDataFrame(
        [(1, [1, 2, 3, 4]), (2, [1, 2])], "user_id bigint, item_ids array<bigint>"
    )
    got = gold.item_cooccurrence(seqs, window=1, top_k=5).collect()
    pairs = {(r.item_id, r.neighbor_id): r.pair_count for r in got}
    # window 1: only consecutive events pair up; (1,3) never does.
    assert pairs == {(1, 2): 2, (2, 1): 2, (2, 3): 1, (3, 2): 1, (3, 4): 1, (4, 3): 1}
    top = {r.item_id: r.neighbor_id for r in got if r.rank == 1}
    assert top[2] == 1  # the stronger pair ranks first
