"""What ``services.model_train`` trains on, as engine ``Interactions``.

- ``db``: the platform's own log (``learning.selectors.positive_events``:
  every ``rating``, ``watch`` and ``click``, whatever the stars; ``watchlist``
  events are intent and are left out). A user-movie pair counts once, at its
  first event, with the latest rating's value kept as ``rating`` (0 when the
  pair was never rated). Item ids are catalog ``Movie`` pks.
- ``ml-100k`` / a MovieLens folder / a CSV: the engine's loaders; MovieLens
  item ids become ``Movie`` pks through ``ml100k_id`` (ML-100K) or
  ``movielens_id`` (other sets) where the catalog has them; events of
  unmatched movies are dropped (the product cannot show them). With no match
  at all (an empty catalog) the raw ids are kept, for benchmarks.
- ``gold``: the data platform's gold Delta tables.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from catalog import selectors as catalog_selectors
from learning import selectors as learning_selectors

logger = logging.getLogger(__name__)


def training_interactions(
    *, dataset: str | None = None, gold: str | None = None, id_field: str = "auto"
) -> Any:
    """The interactions to train on (module docstring); ``ValueError`` when
    there are none."""
    from recommendations.engine.data.loading import load_data

    if gold:
        from recommendations.engine.data.gold import load_interactions

        return load_interactions(
            gold, kinds=learning_selectors.POSITIVE_KINDS, name="gold"
        )
    spec = dataset
    if spec is None:
        spec = "db" if learning_selectors.interactions_exist() else "ml-100k"
    if spec == "db":
        return interactions_from_db()
    return map_to_movies(load_data(spec), _id_field(spec, id_field))


def _id_field(spec: str, choice: str) -> str:
    if choice != "auto":
        return choice
    return "ml100k_id" if "100k" in Path(spec).name.lower() else "movielens_id"


def interactions_from_db() -> Any:
    """The interaction log's positive events as engine interactions."""
    from recommendations.engine.data.interactions import Interactions

    frame = pd.DataFrame.from_records(
        list(learning_selectors.positive_events()),
        columns=["user_id", "item_id", "kind", "value", "occurred_at"],
    )
    if frame.empty:
        raise ValueError("the interaction log has no rating/watch/click events")
    frame["timestamp"] = (
        pd.to_datetime(frame["occurred_at"], utc=True).astype("int64") // 10**9
    )
    # The latest rating wins (full clock resolution); the order of equal
    # seconds is the engine's rule (``recommendations.engine.data.ordering``).
    frame = frame.sort_values("occurred_at", kind="stable")
    rated = frame[frame["kind"] == "rating"].groupby(["user_id", "item_id"])["value"]
    pairs = frame.groupby(["user_id", "item_id"], as_index=False)["timestamp"].min()
    pairs["rating"] = (
        pairs.set_index(["user_id", "item_id"]).index.map(rated.last()).astype(float)
    )
    pairs["rating"] = pairs["rating"].fillna(0.0)
    return Interactions.from_frame(pairs, name="platform-log")


def map_to_movies(data: Any, field: str) -> Any:
    """Re-key MovieLens item ids to ``Movie`` pks (module docstring)."""
    from recommendations.engine.data.interactions import Interactions

    ids = [int(i) for i in data.items.ids]
    mapping = catalog_selectors.movie_ids_by_field(field=field, values=ids)
    if not mapping:
        logger.warning(
            "no catalog movie matches the %s ids of %s: training on the raw ids",
            field,
            data.name,
        )
        return data
    frame = data.to_frame()
    known = frame["item_id"].isin(list(mapping))
    if not known.all():
        logger.warning(
            "%d events of %d movies without a catalog match are left out",
            int((~known).sum()),
            len(set(ids) - set(mapping)),
        )
    frame = frame[known].copy()
    frame["item_id"] = frame["item_id"].map(mapping).astype(np.int64)
    features = None
    if data.item_features is not None:
        features = data.item_features.copy()
        features.index = data.items.ids
        features = features[features.index.isin(list(mapping))]
        features.index = [mapping[int(i)] for i in features.index]
    return Interactions.from_frame(frame, item_features=features, name=data.name)
