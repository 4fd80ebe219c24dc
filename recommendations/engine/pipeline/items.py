"""Per-item metadata the pipeline needs, indexed by the engine's dense item index.

The Django side fills :class:`ItemMetadata` from the catalog database (genres,
credits, collections, TMDB votes); the engine's own
:class:`~recommendations.engine.data.interactions.Interactions` carries only
title / year / genres, so :meth:`ItemMetadata.from_interactions` builds the
same object with the people and collection fields empty.

Set-valued fields (genres, directors, lead cast) are stored as sparse
multi-hot matrices ``(n_items, n_values)`` so every relation the stages ask
("which candidates share a director with these anchors?") is one sparse
product instead of a Python loop.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommendations.engine.errors import DataError

LEAD_CAST = 3
"""Cast members kept per item (billing order): the lead cast."""


def _multi_hot(
    rows: Sequence[Sequence[Any]] | None, n_items: int, *, limit: int | None = None
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Rows of values -> binary ``(n_items, V)`` CSR matrix and the column values."""
    if rows is None:
        return sp.csr_matrix((n_items, 0), dtype=np.float32), np.zeros(0, dtype=object)
    if len(rows) != n_items:
        raise DataError(f"expected {n_items} rows of values, got {len(rows)}")
    cleaned = [list(dict.fromkeys(r or ()))[:limit] for r in rows]
    flat = [v for r in cleaned for v in r]
    values = np.array(sorted(set(flat), key=str), dtype=object)
    position = {v: j for j, v in enumerate(values)}
    cols = np.fromiter((position[v] for v in flat), dtype=np.int64, count=len(flat))
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in cleaned])])
    data = np.ones(len(flat), dtype=np.float32)
    matrix = sp.csr_matrix((data, cols, indptr), shape=(n_items, len(values)))
    return matrix, values


def _float_array(values: Sequence[Any] | None, n_items: int) -> np.ndarray:
    if values is None:
        return np.full(n_items, np.nan)
    out = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    if len(out) != n_items:
        raise DataError(f"expected {n_items} values, got {len(out)}")
    return out


@dataclass(frozen=True, eq=False)
class ItemMetadata:
    """Catalog facts per dense item index (see module docstring).

    Missing facts are explicit: ``nan`` year / vote average, vote count 0,
    collection ``-1``, an empty row in a multi-hot matrix. Build it with
    :meth:`build` or :meth:`from_interactions` rather than by hand.
    """

    titles: tuple[str, ...]
    years: np.ndarray  # (N,) float, nan = unknown
    genres: sp.csr_matrix  # (N, G) binary
    genre_names: np.ndarray  # (G,) column -> genre name
    directors: sp.csr_matrix  # (N, Pd) binary
    director_ids: np.ndarray  # (Pd,) column -> person id
    cast: sp.csr_matrix  # (N, Pc) binary, lead cast only
    cast_ids: np.ndarray  # (Pc,) column -> person id
    collections: np.ndarray  # (N,) int64, -1 = none
    vote_average: np.ndarray  # (N,) float, nan = unknown
    vote_count: np.ndarray  # (N,) int64
    overviews: tuple[str, ...] = ()
    keywords: tuple[tuple[str, ...], ...] = ()
    person_names: Mapping[Any, str] = field(default_factory=dict)
    collection_names: Mapping[int, str] = field(default_factory=dict)
    _genre_unit: np.ndarray = field(init=False, repr=False)
    """Dense L2-normalised genre rows ``(N, G)``: genre cosine is one small
    matrix product per request (a handful of genre columns)."""

    def __post_init__(self) -> None:
        dense = np.asarray(self.genres.todense(), dtype=np.float32)
        norms = np.linalg.norm(dense, axis=1, keepdims=True)
        object.__setattr__(self, "_genre_unit", dense / np.maximum(norms, 1e-12))

    # ----------------------------------------------------------- construction
    @classmethod
    def build(
        cls,
        titles: Sequence[str],
        *,
        years: Sequence[float | int | None] | None = None,
        genres: Sequence[Sequence[str]] | None = None,
        directors: Sequence[Sequence[Any]] | None = None,
        cast: Sequence[Sequence[Any]] | None = None,
        collections: Sequence[int | None] | None = None,
        vote_average: Sequence[float | None] | None = None,
        vote_count: Sequence[int | None] | None = None,
        overviews: Sequence[str | None] | None = None,
        keywords: Sequence[Sequence[str]] | None = None,
        person_names: Mapping[Any, str] | None = None,
        collection_names: Mapping[int, str] | None = None,
    ) -> ItemMetadata:
        """Build from plain per-item lists (position = dense item index).

        ``cast`` lists are in billing order; only the first :data:`LEAD_CAST`
        are kept. Any field left out is empty for every item.
        """
        n = len(titles)
        genre_m, genre_names = _multi_hot(genres, n)
        dir_m, dir_ids = _multi_hot(directors, n)
        cast_m, cast_ids = _multi_hot(cast, n, limit=LEAD_CAST)
        if collections is None:
            coll = np.full(n, -1, dtype=np.int64)
        else:
            coll = np.array([-1 if c is None else int(c) for c in collections])
            if len(coll) != n:
                raise DataError(f"expected {n} collections, got {len(coll)}")
        counts = np.zeros(n, dtype=np.int64)
        if vote_count is not None:
            counts = np.array([0 if c is None else int(c) for c in vote_count])
        return cls(
            titles=tuple(str(t) for t in titles),
            years=_float_array(years, n),
            genres=genre_m, genre_names=genre_names,
            directors=dir_m, director_ids=dir_ids,
            cast=cast_m, cast_ids=cast_ids,
            collections=coll.astype(np.int64),
            vote_average=_float_array(vote_average, n),
            vote_count=counts.astype(np.int64),
            overviews=tuple("" if o is None else str(o) for o in overviews or ()),
            keywords=tuple(tuple(k or ()) for k in keywords or ()),
            person_names=dict(person_names or {}),
            collection_names=dict(collection_names or {}),
        )  # fmt: skip

    @classmethod
    def from_interactions(cls, data: Any) -> ItemMetadata:
        """Title / year / genres from ``Interactions.item_features``.

        People, collections and votes stay empty (MovieLens does not carry
        them). Without item features the titles are the external item ids.
        """
        n = data.n_items
        features = data.item_features
        if features is None:
            return cls.build([str(i) for i in data.items.ids])

        def column(name: str) -> list[Any] | None:
            if name not in features.columns:
                return None
            return [None if _missing(v) else v for v in features[name].tolist()]

        titles = column("title") or [None] * n
        genres = column("genres")
        return cls.build(
            [
                str(i) if t is None else str(t)
                for t, i in zip(titles, data.items.ids, strict=True)
            ],
            years=column("year"),
            genres=None if genres is None else [list(g or ()) for g in genres],
        )

    # ------------------------------------------------------------------ views
    @property
    def n_items(self) -> int:
        return len(self.titles)

    def genres_of(self, item: int) -> list[str]:
        row = self.genres.getrow(item)
        return [str(g) for g in self.genre_names[row.indices]]

    def directors_of(self, item: int) -> list[Any]:
        return list(self.director_ids[self.directors.getrow(item).indices])

    def cast_of(self, item: int) -> list[Any]:
        return list(self.cast_ids[self.cast.getrow(item).indices])

    def collection_name(self, item: int) -> str | None:
        coll = int(self.collections[item])
        return None if coll < 0 else self.collection_names.get(coll)

    def text(self, item: int) -> str:
        """The item's text for the content model: every textual fact known."""
        names = self.person_names
        parts = [self.titles[item]]
        parts += self.genres_of(item)
        if self.overviews:
            parts.append(self.overviews[item])
        if self.keywords:
            parts += list(self.keywords[item])
        parts += [names.get(p, "") for p in self.directors_of(item)]
        parts += [names.get(p, "") for p in self.cast_of(item)]
        parts.append(self.collection_name(item) or "")
        return " ".join(p for p in parts if p)

    def texts(self) -> list[str]:
        return [self.text(i) for i in range(self.n_items)]

    # -------------------------------------------------------------- relations
    def genre_similarity(self, items: np.ndarray, others: np.ndarray) -> np.ndarray:
        """Cosine similarity of genre multi-hot rows, ``(len(items), len(others))``.

        An item without genres has similarity 0 to everything.
        """
        unit = self._genre_unit
        similarity: np.ndarray = (unit[items] @ unit[others].T).astype(np.float64)
        return similarity

    def shared(
        self, matrix: sp.csr_matrix, items: np.ndarray, others: np.ndarray
    ) -> np.ndarray:
        """Shared values of a multi-hot field per pair ``(len(items), len(others))``."""
        if matrix.nnz == 0:
            return np.zeros((len(items), len(others)), dtype=np.float32)
        return np.asarray((matrix[items] @ matrix[others].T).todense())

    def same_collection(self, items: np.ndarray, others: np.ndarray) -> np.ndarray:
        """Boolean ``(len(items), len(others))``: both in the same known collection."""
        a = self.collections[items][:, None]
        b = self.collections[others][None, :]
        same: np.ndarray = (a == b) & (a >= 0)
        return same

    def quality(self, min_average: float, min_count: int) -> np.ndarray:
        """Per item: vote average >= ``min_average`` from >= ``min_count`` votes."""
        with np.errstate(invalid="ignore"):
            return (self.vote_average >= min_average) & (self.vote_count >= min_count)


def _missing(value: Any) -> bool:
    """None, nan or pandas' NA (a list of genres is never missing).

    pandas is consulted only when already imported: a value can be ``pd.NA``
    only then, and serving (tier 3) must not pay for importing it.
    """
    if value is None:
        return True
    pd = sys.modules.get("pandas")
    if pd is not None:
        return (np.isscalar(value) or value is pd.NA) and bool(pd.isna(value))
    return isinstance(value, float | np.floating) and bool(np.isnan(value))
