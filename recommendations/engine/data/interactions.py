"""The interactions container every model and evaluator works on.

External ids (MovieLens ids, database ids, strings) are mapped to dense
indices ``0..n-1`` by a :class:`Vocabulary`; models only see dense indices.
Events are stored sorted by (user, timestamp, tie key): equal timestamps of
one user are ordered by the one documented rule of
:mod:`recommendations.engine.data.ordering` (a seeded random order by
default, the item-id order only when asked for). Every split, model and
feature reads events in this stored order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from recommendations.engine.data.ordering import TieOrder, event_order, parse_ties
from recommendations.engine.errors import (
    DataError,
    MalformedRowError,
    UnknownItemError,
    UnknownUserError,
)
from recommendations.engine.jsonable import to_jsonable

if TYPE_CHECKING:  # pandas is imported where it is used: serving tier 3 never is
    import pandas as pd

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("user_id", "item_id", "rating", "timestamp")


class Vocabulary:
    """Bidirectional map external id <-> dense index (``0..len-1``)."""

    def __init__(self, ids: Iterable[Any], *, kind: str = "item") -> None:
        import pandas as pd

        self._index = pd.Index(np.asarray(ids))
        if not self._index.is_unique:
            raise DataError(f"{kind} vocabulary has duplicate ids")
        self.kind = kind

    @classmethod
    def from_values(cls, values: Iterable[Any], *, kind: str = "item") -> Vocabulary:
        """Vocabulary of the distinct values, sorted (so index order = id order)."""
        return cls(np.unique(np.asarray(values)), kind=kind)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def ids(self) -> np.ndarray:
        ids: np.ndarray = self._index.to_numpy()
        return ids

    def __contains__(self, external_id: object) -> bool:
        return external_id in self._index

    def index(self, external_ids: Iterable[Any] | Any) -> npt.NDArray[np.int64]:
        """Dense indices of ``external_ids``; an unknown id raises a clear error."""
        values = np.atleast_1d(np.asarray(external_ids))
        positions = self._index.get_indexer(values)
        if (positions < 0).any():
            missing = to_jsonable(values[positions < 0][0])
            if self.kind == "user":
                raise UnknownUserError(missing)
            raise UnknownItemError(missing, len(self))
        return cast("npt.NDArray[np.int64]", positions.astype(np.int64))

    def id_of(self, indices: Iterable[int] | int) -> np.ndarray:
        """External ids of dense ``indices``."""
        idx = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            bad = idx[(idx < 0) | (idx >= len(self))][0]
            raise UnknownItemError(int(bad), len(self))
        return self.ids[idx]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._index.equals(other._index)

    __hash__ = None  # type: ignore[assignment]  # typeshed: unhashable is valid


@dataclass(frozen=True)
class History:
    """One user's current history, oldest first, as dense item indices.

    ``user`` is the dense index of a user the model saw in training, or
    ``None`` for a user who arrived later (models then fold the user in from
    ``items`` alone).
    """

    items: np.ndarray
    timestamps: np.ndarray | None = None
    ratings: np.ndarray | None = None
    user: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", np.asarray(self.items, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.items)


def as_histories(
    histories: Sequence[History | Sequence[int] | np.ndarray],
) -> list[History]:
    """Accept :class:`History` objects or plain sequences of item indices."""
    return [h if isinstance(h, History) else History(np.asarray(h)) for h in histories]


@dataclass(frozen=True, eq=False)
class Interactions:
    """Time-ordered user-item events with their vocabularies.

    Arrays are aligned, one entry per event, sorted by (user, timestamp, tie
    key); ``ties`` is the tie rule (:mod:`~recommendations.engine.data.ordering`)
    and travels with every subset and concatenation.
    """

    users: Vocabulary
    items: Vocabulary
    user_index: np.ndarray  # (E,) int64
    item_index: np.ndarray  # (E,) int64
    ratings: np.ndarray  # (E,) float32
    timestamps: np.ndarray  # (E,) int64
    item_features: pd.DataFrame | None = None  # indexed by dense item index
    name: str = "interactions"
    ties: TieOrder = field(default_factory=TieOrder)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # ----------------------------------------------------------- construction
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        users: Vocabulary | None = None,
        items: Vocabulary | None = None,
        item_features: pd.DataFrame | None = None,
        name: str = "interactions",
        ties: TieOrder | str | None = None,
    ) -> Interactions:
        """Build from a frame with ``user_id, item_id, rating, timestamp``.

        Vocabularies default to the sorted distinct ids of ``frame``.
        ``item_features`` (optional) is indexed by external item id and is
        re-indexed to dense indices. ``ties``: the order of equal timestamps
        (:func:`~recommendations.engine.data.ordering.parse_ties`; default
        the seeded random order). The input row order never matters.
        """
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"interactions frame lacks columns {missing}")
        users = users or Vocabulary.from_values(
            frame["user_id"].to_numpy(), kind="user"
        )
        items = items or Vocabulary.from_values(
            frame["item_id"].to_numpy(), kind="item"
        )
        u = users.index(frame["user_id"].to_numpy())
        i = items.index(frame["item_id"].to_numpy())
        features = None
        if item_features is not None:
            features = item_features.reindex(items.ids).reset_index(drop=True)
        return cls._sorted(
            users, items, u, i,
            frame["rating"].to_numpy(np.float32),
            frame["timestamp"].to_numpy(np.int64),
            features, name, parse_ties(ties),
        )  # fmt: skip

    @classmethod
    def from_csv(cls, path: str | Path, **kwargs: Any) -> Interactions:
        """Read a CSV with header ``user_id,item_id,rating,timestamp``."""
        import pandas as pd

        try:
            frame = pd.read_csv(path)
        except (OSError, pd.errors.ParserError) as exc:
            raise DataError(f"{path}: {exc}") from exc
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: missing columns {missing}")
        for col in ("rating", "timestamp"):
            values = pd.to_numeric(frame[col], errors="coerce")
            bad = values.isna() | frame[["user_id", "item_id"]].isna().any(axis=1)
            if bad.any():
                line = int(np.flatnonzero(bad.to_numpy())[0]) + 2  # header = line 1
                raise MalformedRowError(path, line, f"missing or non-numeric {col}")
            frame[col] = values
        kwargs.setdefault("name", Path(path).stem)
        return cls.from_frame(frame, **kwargs)

    @classmethod
    def from_movielens(
        cls, data: Any, *, ties: TieOrder | str | None = None
    ) -> Interactions:
        """Build from :class:`~recommendations.engine.data.movielens.MovieLensData`."""
        features = data.movies.set_index("item_id")[["title", "year", "genres"]]
        return cls.from_frame(
            data.ratings, item_features=features, name=data.name, ties=ties
        )

    @classmethod
    def _sorted(
        cls,
        users: Vocabulary,
        items: Vocabulary,
        u: np.ndarray,
        i: np.ndarray,
        r: np.ndarray,
        t: np.ndarray,
        features: pd.DataFrame | None,
        name: str,
        ties: TieOrder,
    ) -> Interactions:
        order = event_order(u, t, i, ties)
        return cls(
            users, items, u[order], i[order], r[order], t[order], features, name,
            ties,
        )  # fmt: skip

    # --------------------------------------------------------------- views
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_events(self) -> int:
        return len(self.user_index)

    def __len__(self) -> int:
        return self.n_events

    @property
    def user_ptr(self) -> np.ndarray:
        """CSR-style offsets: events of user ``u`` are ``[ptr[u], ptr[u+1])``."""
        if "ptr" not in self._cache:
            counts = np.bincount(self.user_index, minlength=self.n_users)
            self._cache["ptr"] = np.concatenate([[0], np.cumsum(counts)])
        ptr: np.ndarray = self._cache["ptr"]
        return ptr

    def matrix(self) -> sp.csr_matrix:
        """Binary user-item matrix ``(n_users, n_items)``, float32."""
        if "matrix" not in self._cache:
            data = np.ones(self.n_events, dtype=np.float32)
            m = sp.csr_matrix(
                (data, (self.user_index, self.item_index)),
                shape=(self.n_users, self.n_items),
            )
            m.data[:] = 1.0  # repeated (user, item) events count once
            self._cache["matrix"] = m
        return self._cache["matrix"]

    def sequence(self, user: int) -> np.ndarray:
        ptr = self.user_ptr
        return self.item_index[ptr[user] : ptr[user + 1]]

    def sequences(self) -> list[np.ndarray]:
        """Per user, the time-ordered dense item indices."""
        ptr = self.user_ptr
        return [self.item_index[ptr[u] : ptr[u + 1]] for u in range(self.n_users)]

    def history(self, user: int) -> History:
        ptr = self.user_ptr
        sl = slice(ptr[user], ptr[user + 1])
        return History(self.item_index[sl], self.timestamps[sl], self.ratings[sl], user)

    def histories(self, users: Iterable[int] | None = None) -> list[History]:
        users = range(self.n_users) if users is None else users
        return [self.history(int(u)) for u in users]

    def item_counts(self) -> np.ndarray:
        """Events per item, ``(n_items,)`` int64."""
        return np.bincount(self.item_index, minlength=self.n_items)

    def select(self, mask: np.ndarray) -> Interactions:
        """The events where ``mask`` is true, with the same vocabularies."""
        return Interactions(
            self.users, self.items, self.user_index[mask], self.item_index[mask],
            self.ratings[mask], self.timestamps[mask], self.item_features, self.name,
            self.ties,
        )  # fmt: skip

    def concat(self, other: Interactions) -> Interactions:
        """Events of both containers (same vocabularies), re-sorted by the
        (common) tie rule, so ``select`` then ``concat`` restores the order."""
        if self.users != other.users or self.items != other.items:
            raise DataError("cannot concatenate interactions with other vocabularies")
        if self.ties != other.ties:
            raise DataError(
                f"cannot concatenate interactions ordered by {self.ties} and "
                f"{other.ties}"
            )
        return Interactions._sorted(
            self.users, self.items,
            np.concatenate([self.user_index, other.user_index]),
            np.concatenate([self.item_index, other.item_index]),
            np.concatenate([self.ratings, other.ratings]),
            np.concatenate([self.timestamps, other.timestamps]),
            self.item_features, self.name, self.ties,
        )  # fmt: skip

    def to_frame(self) -> pd.DataFrame:
        """Events with external ids, columns ``user_id,item_id,rating,timestamp``."""
        import pandas as pd

        return pd.DataFrame(
            {
                "user_id": self.users.ids[self.user_index],
                "item_id": self.items.ids[self.item_index],
                "rating": self.ratings,
                "timestamp": self.timestamps,
            }
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_events,
            **self.ties.describe(),
        }
