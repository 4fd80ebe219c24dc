"""Where tables live in the lake, batch ids, and small Delta helpers."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

LAYERS = ("bronze", "silver", "gold")


@dataclass(frozen=True)
class Lake:
    """A lake root: ``landing/``, ``bronze/``, ``silver/``, ``gold/`` below it."""

    root: str

    def path(self, layer: str, table: str) -> str:
        return f"{self.root.rstrip('/')}/{layer}/{table}"

    @property
    def landing_events(self) -> Path:
        return Path(self.root) / "landing" / "events"


@dataclass(frozen=True)
class Batch:
    """One ``etl run``: every bronze row it writes carries this id and time."""

    id: str
    started: datetime

    @classmethod
    def new(cls) -> Batch:
        now = datetime.now(UTC)
        # Sortable by time first; the suffix keeps two runs in one second apart.
        return cls(f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}", now)


def is_delta(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path)


def read_delta(spark: SparkSession, path: str) -> DataFrame | None:
    return spark.read.format("delta").load(path) if is_delta(spark, path) else None


def last_output_rows(spark: SparkSession, path: str) -> int:
    """Rows written by the table's latest commit (from Delta's own metrics)."""
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, path).history(1).collect()[0]
    metrics = row["operationMetrics"] or {}
    for key in ("numOutputRows", "numTargetRowsInserted"):
        if key in metrics:
            value = int(metrics[key])
            if key == "numTargetRowsInserted":
                value += int(metrics.get("numTargetRowsUpdated", 0))
            return value
    return 0


@contextmanager
def stage(name: str, **fields: object) -> Iterator[dict[str, object]]:
    """Log a stage's start and end with its timing and whatever it reports.

    The body fills the yielded dict (e.g. ``rows``); the end line carries it.
    """
    info: dict[str, object] = {"stage": name, **fields}
    logger.info("stage started", extra=info)
    started = time.perf_counter()
    yield info
    seconds = time.perf_counter() - started
    info["seconds"] = round(seconds, 2)
    rows = info.get("rows")
    if isinstance(rows, int) and seconds > 0:
        info["rows_per_s"] = round(rows / seconds)
    logger.info("stage finished", extra=info)
