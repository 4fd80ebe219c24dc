"""The layers together: quarantine, SCD2 history, incremental = full rebuild, CLI.

One scenario is built once per module (two runs on one lake) and several
tests look at it, because every Spark run costs seconds:

- batch 1: an ML-100K folder whose u.data has a rating of 9 and a line with a
  missing field, plus an app-event export (k1, k2);
- batch 2: the same u.data again (must be skipped), a u.item where movie 2 got
  a new title (SCD2), and a second export that updates k1 with a later event,
  adds k3 and a click, and carries an unknown event kind.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from etl import pipeline, silver
from etl.__main__ import main
from etl.lake import Lake
from etl.tests.helpers import (
    SMALL_RATINGS,
    event,
    item_line,
    rows,
    write_events,
    write_ml100k,
)

pytestmark = pytest.mark.spark

RATINGS_WITH_ERRORS = [*SMALL_RATINGS, (2, 2, 9, 881250999), (3, 1, 4)]
NEW_ITEMS = [
    item_line(1, "Toy Story (1995)", {3: 1, 4: 1, 5: 1}),
    item_line(2, "GoldenEye: Director's Cut (1995)", {1: 1, 2: 1, 16: 1}),
    item_line(3, "Café Society (1995)", {8: 1}),
]


@dataclass
class Scenario:
    lake: Lake
    first: pipeline.RunReport
    second: pipeline.RunReport
    second_batches: list[str]


@pytest.fixture(scope="module")
def scenario(spark, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("scenario")
    lake = Lake(str(root / "lake"))
    ml1 = write_ml100k(root / "ml1", RATINGS_WITH_ERRORS)
    write_events(root / "lake", "1", [
        event(1, "k1", ml_user=1, ml_movie=3, value=2.0, at="2026-11-01T10:00:00"),
        event(2, "k2", user=50, movie=900, ml_movie=None, value=5.0),
    ])  # fmt: skip
    first = pipeline.run(spark, lake, sources=[str(ml1)])
    ml2 = write_ml100k(root / "ml2", RATINGS_WITH_ERRORS, items=NEW_ITEMS)
    write_events(root / "lake", "2", [
        event(3, "k1", ml_user=1, ml_movie=3, value=5.0, at="2026-11-02T10:00:00"),
        event(4, "k3", ml_user=2, ml_movie=2, value=3.5),
        event(5, "k4", ml_user=2, ml_movie=1, kind="click", value=None),
        event(6, "k5", kind="like"),
    ])  # fmt: skip
    pending = silver.pending_batches(spark, lake)
    assert pending == []
    second = pipeline.run(spark, lake, sources=[str(ml2)])
    done = spark.read.format("delta").load(lake.path("silver", "_processed_batches"))
    return Scenario(lake, first, second, [r[0] for r in done.collect()])


def _table(spark, lake: Lake, layer: str, name: str):
    return spark.read.format("delta").load(lake.path(layer, name))


def test_bad_rows_are_quarantined_with_reason_and_good_rows_kept(
    spark, scenario
) -> None:
    q = _table(spark, scenario.lake, "silver", "quarantine")
    got = sorted((r.table, r.rule, r.raw) for r in q.collect())
    assert got == [
        ("interactions", "kind:allowed", got[0][2]),
        ("interactions", "malformed_row", "3\t1\t4"),
        ("interactions", "rating:max:5", got[2][2]),
    ]
    assert json.loads(got[0][2])["idempotency_key"] == "k5"
    assert json.loads(got[2][2]) == {
        "user_id": "2", "item_id": "2", "rating": "9", "timestamp": "881250999",
    }  # fmt: skip
    assert scenario.first.rows["silver.interactions"] == 7  # 5 ratings + 2 events


def test_the_second_run_reads_only_the_new_batch(scenario) -> None:
    assert scenario.second.batch not in (None, scenario.first.batch)
    assert scenario.second.rows["bronze.app_events"] == 4
    assert "bronze.ml_ratings" not in scenario.second.rows  # same u.data: skipped
    assert scenario.second.rows["bronze.ml_movies"] == 3
    assert sorted(scenario.second_batches) == sorted(
        [scenario.first.batch, scenario.second.batch]
    )


def test_the_latest_event_per_idempotency_key_wins_across_batches(
    spark, scenario
) -> None:
    frame = _table(spark, scenario.lake, "silver", "interactions")
    k1 = frame.where("event_key = 'k1'").collect()
    assert [(r.user_id, r.item_id, r.rating) for r in k1] == [(1, 3, 5.0)]
    assert frame.count() == 9  # 5 ratings + k1..k4


def test_a_title_change_keeps_history(spark, scenario) -> None:
    movies = _table(spark, scenario.lake, "silver", "movies")
    history = movies.where("item_id = 2").orderBy("valid_from").collect()
    assert [(r.title, r.is_current) for r in history] == [
        ("GoldenEye", False),
        ("GoldenEye: Director's Cut", True),
    ]
    assert history[0].valid_to == history[1].valid_from
    assert history[1].valid_to is None
    assert movies.where("item_id <> 2").count() == 2  # unchanged: one row each
    assert movies.where("is_current").count() == 3


def test_gold_reflects_both_batches(spark, scenario) -> None:
    seqs = {
        r.user_id: r
        for r in _table(spark, scenario.lake, "gold", "user_sequences").collect()
    }
    assert seqs[2].kinds.count("click") == 1
    assert 2 in seqs[2].item_ids and seqs[1].n_events == 4
    items = {
        r.item_id: r
        for r in _table(spark, scenario.lake, "gold", "item_features").collect()
    }
    assert items[2].title == "GoldenEye: Director's Cut"
    assert "Action" in items[2].text and items[1].propensity == 1.0


SKIP_COLUMNS = {"_quarantined_at"}
COMPARED = [
    ("silver", "interactions"), ("silver", "movies"), ("silver", "users"),
    ("silver", "quarantine"), ("gold", "user_sequences"), ("gold", "item_features"),
    ("gold", "user_features"), ("gold", "item_cooccurrence"),
]  # fmt: skip


def _snapshot(spark, lake: Lake) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    for layer, name in COMPARED:
        frame = _table(spark, lake, layer, name)
        cols = sorted(c for c in frame.columns if c not in SKIP_COLUMNS)
        frame = frame.select(*[F.to_json(F.struct(c)).alias(c) for c in cols])
        out[f"{layer}.{name}"] = rows(frame, *cols)
    return out


def test_incremental_runs_equal_a_full_rebuild_from_bronze(
    spark, scenario, tmp_path: Path
) -> None:
    rebuilt = Lake(str(tmp_path / "rebuilt"))
    shutil.copytree(Path(scenario.lake.root) / "bronze", Path(rebuilt.root) / "bronze")
    report = pipeline.run(spark, rebuilt, layers=("silver", "gold"))
    assert report.rows["silver.interactions"] == 9
    incremental, full = _snapshot(spark, scenario.lake), _snapshot(spark, rebuilt)
    for table in incremental:
        assert incremental[table] == full[table], table


def test_cli_run_prints_rows_and_stages(
    ml_small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = str(tmp_path / "lake")
    assert main(["run", "--source", str(ml_small), "--lake", lake, "--layers",
                 "bronze"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == {"bronze.ml_ratings": 5, "bronze.ml_movies": 3,
                           "bronze.ml_users": 2}  # fmt: skip
    stage = next(s for s in out["stages"] if s["stage"] == "bronze")
    assert stage["files"] == 3 and stage["seconds"] >= 0 and stage["rows"] == 10


def test_cli_status_optimize_and_vacuum(
    spark, scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = scenario.lake.root
    assert main(["status", "--lake", lake]) == 0
    status = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status[0]["runs"] == 2 and status[0]["batches_pending_silver"] == 0
    assert status[0]["last_run"] == scenario.second.batch
    by_table = {s["table"]: s for s in status[1:]}
    assert by_table["gold.user_sequences"]["rows"] == 3
    assert by_table["silver.movies"]["last_operation"] == "MERGE"
    assert by_table["silver.quarantine"]["quarantine"] == {
        "interactions/kind:allowed": 1,
        "interactions/malformed_row": 1,
        "interactions/rating:max:5": 1,
    }
    # One table, not all fourteen: each OPTIMIZE / VACUUM is several Spark jobs.
    one = "gold.user_sequences"
    assert main(["optimize", "--lake", lake, "--tables", one]) == 0
    assert "gold.user_sequences" in capsys.readouterr().out
    history = spark.sql(f"DESCRIBE HISTORY delta.`{lake}/gold/user_sequences`")
    assert "OPTIMIZE" in {r.operation for r in history.collect()}
    assert main(["vacuum", "--lake", lake, "--tables", one]) == 0
    assert capsys.readouterr().out.split() == ["gold.user_sequences"]


def test_cli_reports_a_bad_file_and_exits_2(
    spark, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write_ml100k(tmp_path / "bad", SMALL_RATINGS)
    (bad / "u.user").write_text("1|24|M\n")
    code = main(["run", "--source", str(bad), "--lake", str(tmp_path / "lake")])
    assert code == 2
    err = capsys.readouterr().err
    assert "u.user" in err and "missing column 'occupation'" in err
    assert not (tmp_path / "lake" / "bronze").exists()
