"""Bronze: raw input rows, append-only, with lineage.

Every row keeps ``_source_file``, ``_ingested_at`` and ``_batch_id`` (plus
``_dataset`` / ``_layout`` for MovieLens and TMDB files). Values stay as the
file had them (strings for text files, the export's types for Parquet).

``_ingested_files`` is the log of what was ingested, keyed by content hash:
a file seen before is skipped, so re-ingesting is a no-op. The log is written
*last*, which makes it the commit marker of a batch: silver only reads rows of
batches listed there, so a run that died half-way leaves no visible rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from etl.lake import Batch, Lake, is_delta, last_output_rows, read_delta, stage
from etl.sources import (
    InputFile,
    file_identity,
    files_of,
    preflight,
    read_delimited,
    read_events,
)

logger = logging.getLogger(__name__)

LOG_TABLE = "_ingested_files"
EVENTS_TABLE = "app_events"
LOG_SCHEMA = StructType(
    [
        StructField("identity", StringType(), False),
        StructField("path", StringType(), False),
        StructField("table", StringType(), False),
        StructField("batch_id", StringType(), False),
        StructField("ingested_at", TimestampType(), False),
        StructField("rows", LongType(), True),
    ]
)


@dataclass
class BronzeResult:
    batch: Batch
    rows: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def with_lineage(frame: DataFrame, source_file: str | None, batch: Batch) -> DataFrame:
    """Add the lineage columns; ``source_file=None`` takes Spark's file metadata."""
    source = F.lit(source_file) if source_file else F.col("_metadata.file_path")
    return frame.withColumns(
        {
            "_source_file": source,
            "_ingested_at": F.lit(batch.started).cast("timestamp"),
            "_batch_id": F.lit(batch.id),
        }
    )


def ingested_identities(spark: SparkSession, lake: Lake) -> set[str]:
    log = read_delta(spark, lake.path("bronze", LOG_TABLE))
    if log is None:
        return set()
    return {r[0] for r in log.select("identity").distinct().collect()}


@dataclass(frozen=True)
class BatchLog:
    """What each committed batch wrote: its time and tables (one small read)."""

    ingested_at: dict[str, datetime]
    tables: dict[str, frozenset[str]]

    @property
    def batches(self) -> list[str]:
        """Committed batch ids, oldest first."""
        return sorted(self.ingested_at)

    def with_tables(self, batches: list[str], tables: set[str]) -> list[str]:
        return [b for b in batches if self.tables.get(b, frozenset()) & tables]


def batch_log(spark: SparkSession, lake: Lake) -> BatchLog:
    log = read_delta(spark, lake.path("bronze", LOG_TABLE))
    if log is None:
        return BatchLog({}, {})
    rows = log.select("batch_id", "ingested_at", "table").distinct().collect()
    times = {r.batch_id: r.ingested_at for r in rows}
    tables: dict[str, set[str]] = {}
    for r in rows:
        tables.setdefault(r.batch_id, set()).add(r.table)
    return BatchLog(times, {k: frozenset(v) for k, v in tables.items()})


def committed_batches(spark: SparkSession, lake: Lake) -> list[str]:
    """Batch ids whose bronze writes completed, oldest first."""
    return batch_log(spark, lake).batches


def landing_files(lake: Lake) -> list[str]:
    folder = lake.landing_events
    return sorted(str(p) for p in folder.glob("*.parquet")) if folder.is_dir() else []


def ingest(
    spark: SparkSession,
    lake: Lake,
    sources: list[Path],
    *,
    batch: Batch | None = None,
    include_landing: bool = True,
) -> BronzeResult:
    """Append every new file of ``sources`` (folders) and the landing folder.

    All files are checked before anything is written: a bad file raises
    :class:`~etl.sources.InputFileError` and no table changes.
    """
    batch = batch or Batch.new()
    result = BronzeResult(batch)
    seen = ingested_identities(spark, lake)

    inputs: list[InputFile] = [f for folder in sources for f in files_of(folder)]
    events = landing_files(lake) if include_landing else []
    todo: list[tuple[str, str, InputFile | None]] = []  # (identity, path, spec)
    for path, item in [(i.path, i) for i in inputs] + [(e, None) for e in events]:
        identity = file_identity(path)
        if identity in seen:
            result.skipped.append(path)
            logger.info("file already ingested; skipped", extra={"path": path})
            continue
        seen.add(identity)  # the same content twice in one batch counts once
        todo.append((identity, path, item))

    # Phase 1: read and check every file; nothing is written yet.
    frames: dict[str, list[DataFrame]] = {}
    log_rows: list[tuple[str, str, str]] = []
    for identity, path, item in todo:
        if item is None:
            frame = with_lineage(read_events(spark, path), path, batch)
            table = EVENTS_TABLE
        else:
            header = preflight(spark, item)
            frame = with_lineage(read_delimited(spark, item, header), path, batch)
            frame = frame.withColumns(
                {"_dataset": F.lit(item.dataset), "_layout": F.lit(item.layout)}
            )
            table = item.spec.table
        frames.setdefault(table, []).append(frame)
        log_rows.append((identity, path, table))

    # Phase 2: one append per table, then the log that commits the batch.
    for table, parts in frames.items():
        frame = parts[0]
        for part in parts[1:]:
            frame = frame.unionByName(part, allowMissingColumns=True)
        path = lake.path("bronze", table)
        with stage(f"bronze.{table}", batch=batch.id) as info:
            (
                frame.write.format("delta")
                .mode("append")
                # A later release may add columns (e.g. CSV layout's genres
                # next to ML-100K's flags); bronze keeps them all.
                .option("mergeSchema", "true")
                .save(path)
            )
            info["rows"] = last_output_rows(spark, path)
        result.rows[table] = int(info["rows"])  # type: ignore[arg-type]
    if log_rows:
        log = spark.createDataFrame(
            [
                (ident, path, table, batch.id, batch.started, result.rows.get(table))
                for ident, path, table in log_rows
            ],
            LOG_SCHEMA,
        )
        log.write.format("delta").mode("append").save(lake.path("bronze", LOG_TABLE))
    result.files = [p for _, p, _ in log_rows]
    return result


def committed(frame: DataFrame, batches: list[str]) -> DataFrame:
    """Rows of committed batches only (see the module docstring)."""
    return frame.where(F.col("_batch_id").isin(batches))


def bronze_table(
    spark: SparkSession, lake: Lake, table: str, batches: list[str]
) -> DataFrame | None:
    path = lake.path("bronze", table)
    if not batches or not is_delta(spark, path):
        return None
    return committed(spark.read.format("delta").load(path), batches)
