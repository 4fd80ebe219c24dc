"""Contracts: typed valid rows out, every violation quarantined with its rule."""

from __future__ import annotations

import json

import pytest
from pyspark.sql import functions as F

from etl import contracts
from etl.contracts import INTERACTIONS, enforce

pytestmark = pytest.mark.spark

COLUMNS = (
    "event_key string, user_id string, item_id string, kind string, "
    "rating string, ts string, _raw string, _source_file string, _batch_id string"
)


def _frame(spark, rows):
    full = [(*r, json.dumps({"row": i}), "f.tsv", "b1") for i, r in enumerate(rows)]
    return spark.createDataFrame(full, COLUMNS)


def test_good_rows_come_back_typed(spark) -> None:
    frame = _frame(spark, [("k1", "1", " 2", "rating", "4", "881250949")])
    valid, bad = enforce(frame, INTERACTIONS)
    assert bad.count() == 0
    row = valid.collect()[0]
    assert (row.user_id, row.item_id, row.rating, row.ts) == (1, 2, 4.0, 881250949)
    assert dict(valid.dtypes)["user_id"] == "bigint"


def test_each_broken_rule_lands_in_quarantine_with_its_name(spark) -> None:
    frame = _frame(
        spark,
        [
            ("ok", "1", "2", "rating", "4", "881250949"),
            ("a", "abc", "2", "rating", "4", "881250949"),
            ("b", "1", "2", "rating", "9", "881250949"),
            ("c", "1", "2", "like", None, "881250949"),
            ("d", "1", "2", "rating", None, "881250949"),
            ("e", "1", "2", "rating", "3", "1"),
            ("f", "1", None, "rating", "3", "881250949"),
        ],
    )
    valid, bad = enforce(frame, INTERACTIONS)
    assert [r.event_key for r in valid.collect()] == ["ok"]
    got = {
        json.loads(r.raw)["row"]: (r.rule, list(r.failed_rules)) for r in bad.collect()
    }
    assert got == {
        1: ("user_id:type:bigint", ["user_id:type:bigint", "user_id:not_null"]),
        2: ("rating:max:5", ["rating:max:5"]),
        3: ("kind:allowed", ["kind:allowed"]),
        4: ("rating_without_value", ["rating_without_value"]),
        5: ("ts:min:7.88918e+08", ["ts:min:7.88918e+08"]),
        6: ("item_id:not_null", ["item_id:not_null"]),
    }
    assert {r._source_file for r in bad.collect()} == {"f.tsv"}


def test_a_malformed_line_is_quarantined_with_the_line_itself(spark) -> None:
    frame = _frame(spark, [("k", "1", "2", "rating", "4", "881250949")])
    frame = frame.withColumn(contracts.CORRUPT_COLUMN, F.lit("1\t2"))
    valid, bad = enforce(frame, INTERACTIONS)
    assert valid.count() == 0
    (row,) = bad.collect()
    assert (row.rule, row.raw) == ("malformed_row", "1\t2")


def test_a_frame_without_the_contract_columns_is_a_programming_error(spark) -> None:
    with pytest.raises(ValueError, match="lacks contract columns"):
        enforce(spark.createDataFrame([("x",)], "event_key string"), INTERACTIONS)
