"""Incremental export of the interaction log to the lake's landing zone.

Contract with the Spark ETL (``etl/``): each run writes the rows added since
the previous run to ``<APEX_LAKE_DIR>/landing/events/events-<UTC timestamp>
.parquet`` with a fixed Arrow schema (``EVENTS_SCHEMA``). The watermark is the
last exported event id, stored in ``ExportWatermark``; a rerun with nothing
new writes no file. Files are written under a dot-name and renamed, so a
reader never sees half a file (Spark skips names starting with "." or "_").

Delivery is at-least-once: if the process dies between the rename and the
watermark commit, the next run exports those rows again, and the ETL dedupes
on ``event_id`` / ``idempotency_key``. Only rows older than ``settle_seconds``
are exported, so a transaction that took an id earlier but commits later is
not skipped by a watermark that already moved past it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from learning.models import ExportWatermark, Interaction

logger = logging.getLogger(__name__)

WATERMARK = "events-parquet"
CHUNK_ROWS = 50_000

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.int64(), nullable=False),
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("movielens_user_id", pa.int64()),
        pa.field("movie_id", pa.int64(), nullable=False),
        pa.field("movielens_id", pa.int64()),
        pa.field("tmdb_id", pa.int64()),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("occurred_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("idempotency_key", pa.string(), nullable=False),
    ]
)


@dataclass
class ExportResult:
    rows: int
    path: Path | None
    first_event_id: int | None
    last_event_id: int | None


def events_landing_dir(lake_dir: Path | None = None) -> Path:
    return Path(lake_dir or settings.APEX_LAKE_DIR) / "landing" / "events"


def _movielens_user_id(source: str, external_id: str) -> int | None:
    if source.startswith("movielens:") and external_id.isdigit():
        return int(external_id)
    return None


def _movielens_id(event_source: str, ml100k_id, movielens_id) -> int | None:
    # ML-100K numbers movies in its own id space; the event's source says
    # which one the ETL should read this id in.
    if event_source == "movielens:ml-100k":
        return ml100k_id
    return movielens_id if movielens_id is not None else None


def events_export(
    *,
    since: datetime | None = None,
    lake_dir: Path | None = None,
    settle_seconds: float = 5.0,
    now: datetime | None = None,
) -> ExportResult:
    """Write events newer than the watermark (and, if given, at or after
    ``since`` by ``created_at``) to one Parquet file; advance the watermark."""
    now = now or timezone.now()
    with transaction.atomic():
        mark, _ = ExportWatermark.objects.select_for_update().get_or_create(
            name=WATERMARK
        )
        rows = Interaction.objects.filter(
            id__gt=mark.last_event_id,
            created_at__lte=now - timedelta(seconds=settle_seconds),
        )
        if since is not None:
            rows = rows.filter(created_at__gte=since)
        rows = rows.order_by("id").values_list(
            "id",
            "user_id",
            "user__source",
            "user__external_id",
            "movie_id",
            "movie__ml100k_id",
            "movie__movielens_id",
            "movie__tmdb_id",
            "kind",
            "value",
            "occurred_at",
            "source",
            "idempotency_key",
        )
        out_dir = events_landing_dir(lake_dir)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = out_dir / f"events-{stamp}.parquet"
        partial = out_dir / f".events-{stamp}.parquet.part"
        writer = None
        count, first, last = 0, None, None
        try:
            buffer: list[tuple] = []
            for row in rows.iterator(chunk_size=CHUNK_ROWS):
                buffer.append(row)
                if len(buffer) >= CHUNK_ROWS:
                    writer = _write(writer, partial, buffer)
                    count, first, last = _advance(count, first, buffer)
                    buffer = []
            if buffer:
                writer = _write(writer, partial, buffer)
                count, first, last = _advance(count, first, buffer)
        finally:
            if writer is not None:
                writer.close()
        if count == 0:
            return ExportResult(0, None, None, None)
        partial.replace(final)
        mark.last_event_id = max(mark.last_event_id, last)
        mark.save(update_fields=["last_event_id", "updated_at"])
    logger.info("exported %d events to %s", count, final, extra={"last_event_id": last})
    return ExportResult(count, final, first, last)


def _advance(count: int, first: int | None, buffer: list[tuple]):
    return (
        count + len(buffer),
        first if first is not None else buffer[0][0],
        buffer[-1][0],
    )


def _write(writer, path: Path, rows: list[tuple]):
    columns = list(zip(*rows, strict=True))
    (event_id, user_id, user_source, user_ext, movie_id, ml100k, mlid, tmdb, kind,
     value, occurred_at, source, key) = columns  # fmt: skip
    table = pa.table(
        {
            "event_id": event_id,
            "user_id": user_id,
            "movielens_user_id": [
                _movielens_user_id(s, e)
                for s, e in zip(user_source, user_ext, strict=True)
            ],
            "movie_id": movie_id,
            "movielens_id": [
                _movielens_id(s, a, b)
                for s, a, b in zip(source, ml100k, mlid, strict=True)
            ],
            "tmdb_id": tmdb,
            "kind": kind,
            "value": value,
            "occurred_at": [t.astimezone(UTC) for t in occurred_at],
            "source": source,
            "idempotency_key": key,
        },
        schema=EVENTS_SCHEMA,
    )
    if writer is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = pq.ParquetWriter(path, EVENTS_SCHEMA, compression="zstd")
    writer.write_table(table)
    return writer
