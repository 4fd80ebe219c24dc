"""Run the layers, report status, and maintain tables (OPTIMIZE / VACUUM)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import SparkSession

from etl import bronze, gold, silver
from etl.lake import LAYERS, Batch, Lake, is_delta, stage
from etl.sources import InputFileError

logger = logging.getLogger(__name__)

NAMED_SOURCES = ("ml-100k", "ml-1m", "ml-latest-small", "ml-latest", "ml-20m", "ml-25m")
ZORDER = {
    # Readers look users / items up by id; clustering by it lets Delta skip
    # files by their min/max statistics.
    ("silver", "interactions"): ("user_id",),
    ("gold", "user_sequences"): ("user_id",),
    ("gold", "item_cooccurrence"): ("item_id",),
    ("gold", "item_features"): ("item_id",),
}
TABLES = {
    "bronze": ("ml_ratings", "ml_movies", "ml_users", "ml_links", "ml_tags",
               "tmdb_movies", "tmdb_people", "app_events", "_ingested_files"),
    "silver": ("interactions", "movies", "users", "quarantine", "_processed_batches"),
    "gold": ("user_sequences", "item_features", "user_features", "item_cooccurrence"),
}  # fmt: skip


def resolve_source(source: str) -> Path:
    """A folder path, or a MovieLens name looked up (and fetched) by the engine.

    Named data sets come from the engine's cache folder; when missing there the
    engine's GroupLens fetcher downloads and verifies the archive.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if source not in NAMED_SOURCES:
        raise InputFileError(source, "not a folder and not a known MovieLens name")
    from recommendations.engine.data.movielens import default_cache_dir, fetch_grouplens

    cached = default_cache_dir() / source
    if cached.is_dir():
        return cached
    return fetch_grouplens(source, default_cache_dir())


@dataclass
class RunReport:
    batch: str | None = None
    stages: list[dict[str, object]] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def run(
    spark: SparkSession,
    lake: Lake,
    *,
    sources: list[str] | None = None,
    layers: tuple[str, ...] = LAYERS,
    include_landing: bool = True,
) -> RunReport:
    """Run the requested layers in order; each logs its stages and row counts."""
    unknown = [layer for layer in layers if layer not in LAYERS]
    if unknown:
        raise ValueError(f"unknown layers {unknown}; expected some of {LAYERS}")
    report = RunReport()
    started = time.perf_counter()
    if "bronze" in layers:
        folders = [resolve_source(s) for s in sources or []]
        with stage("bronze", sources=len(folders)) as info:
            result = bronze.ingest(
                spark, lake, folders, batch=Batch.new(), include_landing=include_landing
            )
            info["rows"] = sum(result.rows.values())
            info["files"] = len(result.files)
            info["skipped"] = len(result.skipped)
        report.batch = result.batch.id
        report.stages.append(info)
        report.rows.update({f"bronze.{k}": v for k, v in result.rows.items()})
    if "silver" in layers:
        with stage("silver") as info:
            sres = silver.build(spark, lake)
            info["batches"] = len(sres.batches)
            info["rows"] = sum(sres.rows.values())
            info["quarantined"] = sres.quarantined
        report.stages.extend(sres.stages)
        report.stages.append(info)
        report.rows.update({f"silver.{k}": v for k, v in sres.rows.items()})
    if "gold" in layers:
        with stage("gold") as info:
            gres = gold.build(spark, lake)
            info["rows"] = sum(gres.rows.values())
        report.stages.extend(gres.stages)
        report.stages.append(info)
        report.rows.update({f"gold.{k}": v for k, v in gres.rows.items()})
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def _open_delta(path: str):  # noqa: ANN202 - deltalake.DeltaTable or None
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(path)
    except TableNotFoundError:
        return None


def status(lake: Lake) -> list[dict[str, object]]:
    """Runs, every table's version / rows / last operation, quarantine counts.

    Read with the ``deltalake`` package from the Delta logs and file
    statistics: no JVM, so ``etl status`` answers in about a second instead of
    waiting for Spark to start.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    log = _open_delta(lake.path("bronze", bronze.LOG_TABLE))
    done = _open_delta(lake.path("silver", silver.STATE_TABLE))
    batches: dict[str, object] = {}
    if log is not None:
        for row in log.to_pyarrow_table(
            columns=["batch_id", "ingested_at"]
        ).to_pylist():
            batches[row["batch_id"]] = row["ingested_at"]
    processed = set()
    if done is not None:
        processed = set(
            done.to_pyarrow_table(columns=["batch_id"])["batch_id"].to_pylist()
        )
    last = max(batches) if batches else None
    rows: list[dict[str, object]] = [
        {
            "last_run": last,
            "last_run_at": str(batches[last]) if last else None,
            "runs": len(batches),
            "batches_pending_silver": len(set(batches) - processed),
        }
    ]
    for layer, tables in TABLES.items():
        for table in tables:
            dt = _open_delta(lake.path(layer, table))
            if dt is None:
                continue
            history = dt.history(1)[0]
            adds = pa.table(dt.get_add_actions(flatten=True))
            count = pc.sum(adds["num_records"]).as_py() if adds.num_rows else 0
            entry: dict[str, object] = {
                "table": f"{layer}.{table}",
                "version": dt.version(),
                "rows": int(count or 0),
                "last_operation": history.get("operation"),
                "last_write": datetime.fromtimestamp(
                    history.get("timestamp", 0) / 1000, UTC
                ).isoformat(timespec="seconds"),
            }
            if (layer, table) == ("silver", "quarantine"):
                data = dt.to_pyarrow_table(columns=["table", "rule"])
                counts = data.group_by(["table", "rule"]).aggregate([([], "count_all")])
                entry["quarantine"] = {
                    f"{r['table']}/{r['rule']}": r["count_all"]
                    for r in counts.to_pylist()
                }
            rows.append(entry)
    return rows


def _selected(
    spark: SparkSession, lake: Lake, only: list[str] | None
) -> list[tuple[str, str]]:
    """Existing ``(layer, table)`` pairs, limited to ``only`` (``layer.table``)."""
    known = [(layer, t) for layer, tables in TABLES.items() for t in tables]
    if only:
        unknown = set(only) - {f"{layer}.{t}" for layer, t in known}
        if unknown:
            raise ValueError(f"unknown tables {sorted(unknown)}")
        known = [(layer, t) for layer, t in known if f"{layer}.{t}" in only]
    return [(layer, t) for layer, t in known if is_delta(spark, lake.path(layer, t))]


def optimize(
    spark: SparkSession, lake: Lake, *, tables: list[str] | None = None
) -> list[str]:
    """Compact tables; Z-order the ones in :data:`ZORDER`."""
    from delta.tables import DeltaTable

    done = []
    for layer, table in _selected(spark, lake, tables):
        path = lake.path(layer, table)
        with stage("optimize", table=f"{layer}.{table}"):
            builder = DeltaTable.forPath(spark, path).optimize()
            columns = ZORDER.get((layer, table))
            if columns:
                builder.executeZOrderBy(*columns)
            else:
                builder.executeCompaction()
        done.append(f"{layer}.{table}")
    return done


def vacuum(
    spark: SparkSession,
    lake: Lake,
    *,
    retain_hours: float = 168.0,
    tables: list[str] | None = None,
) -> list[str]:
    """Delete files no table version within ``retain_hours`` needs.

    Delta refuses less than 7 days unless its safety check is switched off;
    we switch it off only when asked for less, because a shorter window can
    break readers of old versions (time travel, long-running jobs).
    """
    from delta.tables import DeltaTable

    if retain_hours < 168:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    done = []
    for layer, table in _selected(spark, lake, tables):
        with stage("vacuum", table=f"{layer}.{table}"):
            DeltaTable.forPath(spark, lake.path(layer, table)).vacuum(retain_hours)
        done.append(f"{layer}.{table}")
    return done
