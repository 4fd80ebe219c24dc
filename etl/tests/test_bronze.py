"""Bronze: lineage, idempotent re-ingest, and bad files that change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from delta.tables import DeltaTable

from etl import bronze
from etl.lake import Lake
from etl.sources import InputFileError
from etl.tests.helpers import SMALL_RATINGS, event, write_events, write_ml100k

pytestmark = pytest.mark.spark


def _version(spark, lake: Lake, table: str) -> int:
    path = lake.path("bronze", table)
    return DeltaTable.forPath(spark, path).history(1).collect()[0]["version"]


def test_rows_keep_raw_values_and_lineage(
    spark, ml_small: Path, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    result = bronze.ingest(spark, lake, [ml_small])
    assert result.rows == {"ml_ratings": 5, "ml_movies": 3, "ml_users": 2}
    ratings = spark.read.format("delta").load(lake.path("bronze", "ml_ratings"))
    row = ratings.where("user_id = '1' AND item_id = '1'").collect()[0]
    assert (row.rating, row.timestamp) == ("5", "881250949")  # strings, as in the file
    assert row._source_file == str(ml_small / "u.data")
    assert row._batch_id == result.batch.id and row._ingested_at is not None
    movies = spark.read.format("delta").load(lake.path("bronze", "ml_movies"))
    titles = {r.item_id: r.raw_title for r in movies.collect()}
    assert titles["3"] == "Café Society (1995)"  # Latin-1 decoded


def test_reingesting_the_same_files_is_a_no_op(
    spark, ml_small: Path, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    bronze.ingest(spark, lake, [ml_small])
    before = _version(spark, lake, "ml_ratings")
    # Same content under another folder name is the same file.
    copy = write_ml100k(tmp_path / "copy", SMALL_RATINGS)
    again = bronze.ingest(spark, lake, [ml_small, copy])
    assert again.rows == {} and len(again.skipped) == 6
    assert _version(spark, lake, "ml_ratings") == before
    assert (
        spark.read.format("delta").load(lake.path("bronze", "ml_ratings")).count() == 5
    )


def test_landing_events_are_ingested_once(spark, tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    lake = Lake(str(lake_dir))
    write_events(lake_dir, "1", [event(1, "k1"), event(2, "k2")])
    assert bronze.ingest(spark, lake, []).rows == {"app_events": 2}
    write_events(lake_dir, "2", [event(3, "k3")])
    assert bronze.ingest(spark, lake, []).rows == {"app_events": 1}
    frame = spark.read.format("delta").load(lake.path("bronze", "app_events"))
    assert frame.count() == 3
    assert dict(frame.dtypes)["occurred_at"] == "timestamp"


def test_a_wrong_delimiter_names_file_and_column_and_writes_nothing(
    spark, ml_small: Path, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    bronze.ingest(spark, lake, [ml_small])
    versions = {t: _version(spark, lake, t) for t in ("ml_ratings", "ml_movies")}
    bad = write_ml100k(tmp_path / "bad", [(9, 9, 3, 881250949)])
    (bad / "u.data").write_text("9,9,3,881250949\n")
    # u.item of the bad folder is new and valid: it must not land either.
    (bad / "u.item").write_bytes(b"4|New (1999)|" + b"|".join([b"0"] * 22) + b"\n")
    with pytest.raises(InputFileError) as caught:
        bronze.ingest(spark, lake, [bad])
    message = str(caught.value)
    assert str(bad / "u.data") in message and "'item_id'" in message
    assert "wrong delimiter" in message
    assert {t: _version(spark, lake, t) for t in versions} == versions
    assert len(bronze.committed_batches(spark, lake)) == 1


def test_a_missing_header_column_names_it(spark, tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,timestamp\n1,2,881250949\n")
    (folder / "movies.csv").write_text("movieId,title,genres\n2,X (1990),Drama\n")
    lake = Lake(str(tmp_path / "lake"))
    with pytest.raises(InputFileError, match=r"ratings\.csv: missing column 'rating'"):
        bronze.ingest(spark, lake, [folder])
    assert bronze.committed_batches(spark, lake) == []


def test_an_event_export_without_a_column_is_refused(spark, tmp_path: Path) -> None:
    import pandas as pd

    lake_dir = tmp_path / "lake"
    folder = lake_dir / "landing" / "events"
    folder.mkdir(parents=True)
    pd.DataFrame({"event_id": [1], "user_id": [2]}).to_parquet(
        folder / "events-x.parquet"
    )
    with pytest.raises(
        InputFileError, match="events-x.parquet: missing column 'movielens_user_id'"
    ):
        bronze.ingest(spark, Lake(str(lake_dir)), [])
