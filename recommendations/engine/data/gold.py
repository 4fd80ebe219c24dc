"""Read the ETL's gold Delta tables without a JVM (``deltalake`` -> numpy/pandas).

Gold is the contract between Spark and the engine (DESIGN.md section 3): the
ETL writes ``<lake>/gold/user_sequences`` (one row per user, time-ordered
``item_ids`` / ``timestamps`` / ``ratings`` / ``kinds`` arrays) and
``<lake>/gold/item_features``; this module turns them into the engine's
:class:`~recommendations.engine.data.interactions.Interactions`.

Arrow list columns are flattened in one vectorised step (no Python loop over
users), so reading 10M events costs about as much as reading the Parquet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recommendations.engine.data.interactions import Interactions
from recommendations.engine.data.ordering import TieOrder
from recommendations.engine.errors import DataError

logger = logging.getLogger(__name__)

SEQUENCE_COLUMNS = ("user_id", "item_ids", "timestamps", "ratings", "kinds")
FEATURE_COLUMNS = ("item_id", "title", "year", "genres")


def _table(lake: str | Path, name: str, columns: Sequence[str]) -> pa.Table:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    path = f"{str(lake).rstrip('/')}/gold/{name}"
    try:
        table = DeltaTable(path)
    except TableNotFoundError as exc:
        raise DataError(
            f"{path}: no gold Delta table (run `python -m etl run`)"
        ) from exc
    data = table.to_pyarrow_table()
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise DataError(f"{path}: gold table lacks columns {missing}")
    return data.select(list(columns))


def read_events(
    lake: str | Path, *, kinds: Sequence[str] | None = None
) -> pd.DataFrame:
    """Gold user sequences as one event per row.

    Columns ``user_id, item_id, rating, timestamp, kind``; ``kinds`` keeps only
    those event kinds (e.g. ``("rating",)``); non-rating events have a NaN
    rating.
    """
    seqs = _table(lake, "user_sequences", SEQUENCE_COLUMNS)
    items = seqs.column("item_ids").combine_chunks()
    lengths = pc.list_value_length(items).fill_null(0).to_numpy(zero_copy_only=False)
    users = seqs.column("user_id").to_numpy()
    frame = pd.DataFrame(
        {
            "user_id": np.repeat(users, lengths).astype(np.int64),
            "item_id": items.flatten().to_numpy(zero_copy_only=False).astype(np.int64),
            "rating": seqs.column("ratings")
            .combine_chunks()
            .flatten()
            .to_numpy(zero_copy_only=False)
            .astype(np.float64),
            "timestamp": seqs.column("timestamps")
            .combine_chunks()
            .flatten()
            .to_numpy(zero_copy_only=False)
            .astype(np.int64),
            # Four distinct strings over millions of rows: a categorical
            # avoids one Python string object per event.
            "kind": seqs.column("kinds")
            .combine_chunks()
            .flatten()
            .dictionary_encode()
            .to_pandas(),
        }
    )
    if kinds is not None:
        frame = frame[frame["kind"].isin(list(kinds))].reset_index(drop=True)
    return frame


def read_item_features(lake: str | Path) -> pd.DataFrame:
    """``title, year, genres`` indexed by item id (the container's item features)."""
    data = _table(lake, "item_features", FEATURE_COLUMNS).to_pandas()
    data["year"] = data["year"].astype("Int64")
    data["genres"] = [list(g) if g is not None else [] for g in data["genres"]]
    return data.set_index("item_id").sort_index()


def load_interactions(
    lake: str | Path,
    *,
    kinds: Sequence[str] | None = None,
    name: str = "gold",
    with_features: bool = True,
    ties: TieOrder | str | None = None,
) -> Interactions:
    """Build the engine's interactions container from the gold tables.

    The order of gold's arrays is not relied on: the container re-orders the
    events by the engine's rule (``ties``, default the seeded random order of
    :mod:`~recommendations.engine.data.ordering`).
    """
    started = time.perf_counter()
    events = read_events(lake, kinds=kinds)
    features = read_item_features(lake) if with_features else None
    result = Interactions.from_frame(
        events[["user_id", "item_id", "rating", "timestamp"]],
        item_features=features,
        name=name,
        ties=ties,
    )
    logger.info(
        "gold interactions loaded",
        extra={
            "lake": str(lake),
            "events": result.n_events,
            "seconds": round(time.perf_counter() - started, 2),
        },
    )
    return result
