"""One Spark session for every ETL test."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from etl.tests.helpers import SMALL_RATINGS, write_ml100k


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """local[2] with 2 shuffle partitions: the inputs are a few dozen rows."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # py4j logs socket closes at INFO from __del__, after pytest closed streams.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from etl.spark import SparkSettings, build_spark

    session = build_spark(
        SparkSettings.from_env(
            master="local[2]",
            app_name="apex-etl-tests",
            driver_memory="1g",
            shuffle_partitions=2,
            extra_conf={"spark.default.parallelism": "2"},
        )
    )
    yield session
    session.stop()


@pytest.fixture
def ml_small(tmp_path: Path) -> Path:
    return write_ml100k(tmp_path / "ml", SMALL_RATINGS)
