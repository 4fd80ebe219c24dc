"""Tiny input files with known answers (plain functions, imported by tests)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from etl.sources import EVENT_COLUMNS

GENRES_19 = "|".join(["0"] * 19)


def item_line(item_id: int, title: str, flags: dict[int, int] | None = None) -> str:
    bits = ["0"] * 19
    for index, value in (flags or {}).items():
        bits[index] = str(value)
    return f"{item_id}|{title}|01-Jan-1995||http://x/{item_id}|" + "|".join(bits)


def write_ml100k(
    folder: Path,
    ratings: list[tuple[object, ...]],
    items: list[str] | None = None,
    users: list[str] | None = None,
) -> Path:
    """An ML-100K-layout folder: tab-separated u.data, Latin-1 u.item, u.user."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text(
        "".join("\t".join(str(v) for v in row) + "\n" for row in ratings)
    )
    items = items or [
        item_line(1, "Toy Story (1995)", {3: 1, 4: 1, 5: 1}),
        item_line(2, "GoldenEye (1995)", {1: 1, 2: 1, 16: 1}),
        item_line(3, "Café Society (1995)", {8: 1}),
    ]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    users = users or ["1|24|M|technician|85711", "2|53|F|other|94043"]
    (folder / "u.user").write_text("\n".join(users) + "\n")
    return folder


SMALL_RATINGS = [
    (1, 1, 5, 881250949),
    (1, 2, 3, 881250950),
    (2, 1, 4, 881250960),
    (2, 3, 2, 881250940),
    (1, 3, 4, 881250949),
]


def write_events(lake: Path, name: str, rows: list[dict[str, object]]) -> Path:
    """A ``manage.py export_events`` file in the landing folder."""
    folder = lake / "landing" / "events"
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    schema = pa.schema(
        [
            ("event_id", pa.int64()),
            ("user_id", pa.int64()),
            ("movielens_user_id", pa.int64()),
            ("movie_id", pa.int64()),
            ("movielens_id", pa.int64()),
            ("tmdb_id", pa.int64()),
            ("kind", pa.string()),
            ("value", pa.float64()),
            ("occurred_at", pa.timestamp("us", tz="UTC")),
            ("source", pa.string()),
            ("idempotency_key", pa.string()),
        ]
    )
    path = folder / f"events-{name}.parquet"
    pq.write_table(
        pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path
    )
    return path


def event(
    event_id: int,
    key: str,
    *,
    user: int = 7,
    ml_user: int | None = None,
    movie: int = 11,
    ml_movie: int | None = 1,
    kind: str = "rating",
    value: float | None = 4.0,
    at: str = "2026-11-01T10:00:00",
) -> dict[str, object]:
    return {
        "event_id": event_id,
        "user_id": user,
        "movielens_user_id": ml_user,
        "movie_id": movie,
        "movielens_id": ml_movie,
        "tmdb_id": None,
        "kind": kind,
        "value": value,
        "occurred_at": datetime.fromisoformat(at).replace(tzinfo=UTC),
        "source": "web",
        "idempotency_key": key,
    }


def rows(frame: object, *columns: str) -> list[tuple[object, ...]]:
    """Collected rows of the given columns, sorted (order-free comparisons)."""
    return sorted(tuple(r) for r in frame.select(*columns).collect())  # type: ignore[attr-defined]
