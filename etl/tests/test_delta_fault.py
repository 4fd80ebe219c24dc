"""A Spark job killed mid-write leaves its Delta table as it was (issue 18).

Delta commits by writing the next ``_delta_log/<version>.json`` only after
every data file is on disk, so a job killed (``kill -9``: Python driver and
JVM) after its first data file and before the commit leaves files no
version refers to: the table reads at its previous version with its rows,
and the next write commits the next version. The child job is the one of
``benchmarks/faults_bench.py`` (its own process and JVM); this session only
reads and writes around it."""

from __future__ import annotations

import pytest

from benchmarks.faults_bench import spark_kill_mid_write

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_a_job_killed_mid_write_leaves_the_table_at_its_version(spark, tmp_path):
    seen = spark_kill_mid_write(spark, tmp_path, rows=200_000, partitions=40)

    assert seen["killed_mid_write"], seen  # its first data file was on disk
    assert seen["child_exit"] == -9, seen
    assert seen["orphan_data_files"] >= 1, seen
    assert seen["commit_files"] == ["00000000000000000000.json"], seen
    assert seen["version_after_kill"] == seen["version_before"] == 0
    assert seen["rows_after_kill"] == seen["rows_before"] == 1000
    assert seen["next_write_version"] == 1
    assert seen["rows_after_next_write"] == 1010
