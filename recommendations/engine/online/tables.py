"""Incremental updates of a fitted KAN's feature tables from new events.

:class:`OnlineTables` keeps the raw statistics behind the tables the KAN
features read (``models/kan.py`` ``_fit_tables``) and, per batch of events,
adds the batch to them and installs the derived tables in the model
(:meth:`KAN.replace_tables`, which drops the model's CSR cache). Nothing is
rebuilt from the event log; the cost of a batch grows with the batch and the
touched rows, not with the history of the system.

Only ``positive`` events change the tables (explicit negatives are examples
for the learner, not consumption). Per table:

- ``log_pop``: ``log1p`` of the number of distinct users per item; a
  positive event adds 1 when the item is not in the user's history (the
  fitted table counts the binary user-item matrix). **Exact**: equal to a
  rebuild on the same events.
- ``recent_log_pop``: the fitted table counts the events of the last
  ``recent_fraction`` of the training span (a window of ``W`` seconds). A
  sliding window cannot be slid without the events that leave it, so online
  the count is an **exponentially decayed count in event time** with mean
  lifetime ``tau = W``: at rate ``r`` events/s both the window and the
  decayed count tend to ``r W``, so the feature keeps its scale; the
  fitted window count is the starting value. Departure: a burst fades
  smoothly over ~``W`` instead of dropping out after exactly ``W``.
- ``last_seen`` / ``first_seen`` / ``t_end``: max / min event time per item,
  the latest event time. **Exact** (items never seen keep the rebuild's
  convention: ``first_seen = t_end``, ``last_seen`` = the first training time).
- transitions (``trans_*``): raw counts ``last history item -> item`` are kept
  (recovered from the fitted row-normalised table times ``trans_row_total``),
  the events' transitions added, and the table row-normalised again.
  **Exact** up to float32 rounding.
- co-occurrence (``cooc_*``: cosine with shrinkage ``g_ij / (n_i n_j + s)``,
  ``n_i = sqrt(count_i)``, top ``neighbors`` per row). The full ``N x N``
  co-count matrix is not kept (dense it is 380 MB on ml-latest-small). What
  is kept is a sparse co-count matrix ``G``: at start, the fitted top-k entries
  turned back into co-counts (``g = cos (n_i n_j + s)``, exact for those
  entries); then every first consumption of ``j`` by a user with history
  ``H`` adds 1 to ``G[j, i]`` and ``G[i, j]`` for every ``i`` in ``H``
  (exact increments). After a batch, the cosine and top-k of the rows of
  the events' items and of each event's ``recent`` last history items (the
  rows ``cooc_last`` / ``cooc_recent`` read) are recomputed from ``G`` with
  the current counts; other rows keep their increments in ``G`` and are
  refreshed when they are next touched. **Approximate**: a pair outside a
  row's fitted top-k enters the row only through its new co-counts, and a
  row not touched keeps cosines of older counts.
- SVD item embedding (``emb``): kept for the items that had training
  events (re-factorising is a rebuild). An item *cold* at fit time (no
  training event, zero embedding) gets, each time its co-occurrence row is
  recomputed, the normalised cosine-weighted mean of its neighbours'
  embeddings (a one-step fold-in into the fitted space). **Approximate.**
- not updated: year / genres (catalog data) and the feature standardisation
  (``feat_mean`` / ``feat_std``, part of the trained model).

Arrays are never modified in place: every batch installs new arrays, so a
snapshot (``KAN.get_state`` + :meth:`OnlineTables.state`) stays valid
without a copy.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommendations.engine.models.kan import KAN
from recommendations.engine.online.events import OnlineEvent

STATE_KEYS = (
    "pop_count", "recent", "recent_t", "tau", "last_seen", "first_seen", "t_end",
    "gram_data", "gram_indices", "gram_indptr",
    "trans_raw_data", "trans_raw_indices", "trans_raw_indptr", "cold",
)  # fmt: skip


@dataclass(frozen=True)
class TableUpdate:
    """What one batch changed."""

    positives: int
    """Positive events applied."""
    first_consumptions: int
    """Of those, items new to the user (they change counts and co-counts)."""
    transitions: int
    """Transitions added (positive events with a non-empty history)."""
    cooc_rows: int
    """Co-occurrence rows whose cosine / top-k was recomputed."""
    seconds: float
    """Wall time of the update."""


def csr_parts(m: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``data, indices (int64), indptr (int64)`` of a CSR matrix."""
    return (
        np.asarray(m.data),
        np.asarray(m.indices, dtype=np.int64),
        np.asarray(m.indptr, dtype=np.int64),
    )


def replace_rows(
    m: sp.csr_matrix, rows: np.ndarray, new: sp.csr_matrix
) -> sp.csr_matrix:
    """``m`` with the (unique) ``rows`` replaced by the rows of ``new``.

    Vectorised in O(nnz): the other rows' entries are moved, not rebuilt.
    """
    n = m.shape[0]
    old_len = np.diff(m.indptr)
    new_len = np.diff(new.indptr)
    lengths = old_len.copy()
    lengths[rows] = new_len
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    data = np.empty(int(indptr[-1]), dtype=np.result_type(m.dtype, new.dtype))
    indices = np.empty(int(indptr[-1]), dtype=np.int64)
    keep_row = np.ones(n, dtype=bool)
    keep_row[rows] = False
    row_of = np.repeat(np.arange(n), old_len)
    kept = keep_row[row_of]
    offset = np.arange(m.nnz) - m.indptr[row_of]
    dest = indptr[row_of[kept]] + offset[kept]
    data[dest] = m.data[kept]
    indices[dest] = m.indices[kept]
    new_row_of = np.repeat(np.arange(len(rows)), new_len)
    dest = indptr[rows[new_row_of]] + (np.arange(new.nnz) - new.indptr[new_row_of])
    data[dest] = new.data
    indices[dest] = new.indices
    return sp.csr_matrix((data, indices, indptr), shape=m.shape)


def top_k_cosine_rows(
    gram: sp.csr_matrix,
    rows: np.ndarray,
    counts: np.ndarray,
    *,
    k: int,
    shrinkage: float,
) -> sp.csr_matrix:
    """Cosine with shrinkage of ``gram[rows]``, top ``k`` per row, ``(R, N)``.

    ``cos_ij = g_ij / (sqrt(c_i) sqrt(c_j) + shrinkage)``, the diagonal and
    non-positive entries dropped, as in the KAN's fitted table.
    """
    sub = gram[rows]  # (R, N)
    r_of = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
    cols = np.asarray(sub.indices, dtype=np.int64)
    norms = np.sqrt(np.maximum(counts, 0.0))
    cos = sub.data / (norms[rows][r_of] * norms[cols] + shrinkage + 1e-12)
    ok = (cos > 0) & (cols != rows[r_of])
    r_of, cols, cos = r_of[ok], cols[ok], cos[ok]
    order = np.lexsort((-cos, r_of))  # by row, then cosine descending
    r_of, cols, cos = r_of[order], cols[order], cos[order]
    starts = np.searchsorted(r_of, np.arange(len(rows)))
    rank = np.arange(len(r_of)) - starts[r_of]
    top = rank < k
    out = sp.csr_matrix(
        (cos[top].astype(np.float32), (r_of[top], cols[top])),
        shape=(len(rows), gram.shape[1]),
    )
    out.sort_indices()
    return out


class OnlineTables:
    """The raw statistics behind a fitted KAN's tables, updated per batch.

    Args:
        model: a fitted :class:`KAN`; :meth:`update` installs the new tables
            in it.
        state: an :meth:`state` dict to resume from (else the statistics are
            recovered from the model's fitted tables).
    """

    def __init__(
        self, model: KAN, state: Mapping[str, np.ndarray] | None = None
    ) -> None:
        self.model = model
        cfg = model.config
        self.n_items = model.n_items
        self.neighbors = cfg.neighbors
        self.shrinkage = cfg.shrinkage
        self.recent_items = cfg.recent
        if state is not None:
            self.load_state(state)
        else:
            self._from_model(cfg.recent_fraction)

    # ------------------------------------------------------------ start
    def _from_model(self, recent_fraction: float) -> None:
        t = self.model.tables
        n = self.n_items
        counts = np.rint(np.expm1(t["log_pop"].astype(np.float64)))
        t_end = float(t["t_end"])
        first = t["first_seen"].astype(np.float64)
        t_start = float(first.min()) if len(first) else t_end
        self.pop_count = counts
        self.cold = counts == 0
        self.recent_count = np.rint(np.expm1(t["recent_log_pop"].astype(np.float64)))
        self.recent_t = t_end
        self.tau = max(recent_fraction * (t_end - t_start), 1.0)
        self.last_seen = t["last_seen"].astype(np.float64)
        self.first_seen = first
        self.t_end = t_end
        trans = self._csr(t, "trans")
        if "trans_row_total" in t:
            totals = t["trans_row_total"].astype(np.float64)
        else:  # a model fitted before the totals were stored: the smallest
            # entry of a row is (almost always) one transition
            totals = np.zeros(n)
            nz = trans.getnnz(axis=1) > 0
            mins = np.asarray(
                [trans.data[a:b].min() if b > a else 1.0
                 for a, b in zip(trans.indptr[:-1], trans.indptr[1:], strict=True)]
            )  # fmt: skip
            totals[nz] = 1.0 / mins[nz]
        raw = sp.diags(totals) @ trans.astype(np.float64)
        raw = sp.csr_matrix(raw)
        raw.data = np.rint(raw.data)
        raw.eliminate_zeros()
        self.trans_raw = raw
        cooc = self._csr(t, "cooc").astype(np.float64)
        norms = np.sqrt(counts)
        r_of = np.repeat(np.arange(n), np.diff(cooc.indptr))
        g = cooc.data * (norms[r_of] * norms[cooc.indices] + self.shrinkage + 1e-12)
        gram = sp.csr_matrix((np.rint(g), cooc.indices, cooc.indptr), shape=(n, n))
        gram.eliminate_zeros()
        self.gram = gram

    def _csr(self, tables: Mapping[str, np.ndarray], name: str) -> sp.csr_matrix:
        return sp.csr_matrix(
            (tables[f"{name}_data"], tables[f"{name}_indices"],
             tables[f"{name}_indptr"]),
            shape=(self.n_items, self.n_items),
        )  # fmt: skip

    # ------------------------------------------------------------ state
    def state(self) -> dict[str, np.ndarray]:
        """The statistics as arrays (not copied: they are never mutated)."""
        gram, trans = csr_parts(self.gram), csr_parts(self.trans_raw)
        return {
            "pop_count": self.pop_count,
            "recent": self.recent_count,
            "recent_t": np.array(self.recent_t),
            "tau": np.array(self.tau),
            "last_seen": self.last_seen,
            "first_seen": self.first_seen,
            "t_end": np.array(self.t_end),
            "cold": self.cold,
            "gram_data": gram[0], "gram_indices": gram[1], "gram_indptr": gram[2],
            "trans_raw_data": trans[0], "trans_raw_indices": trans[1],
            "trans_raw_indptr": trans[2],
        }  # fmt: skip

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Resume from :meth:`state` (the model's tables are not touched)."""
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"online table state lacks {missing}")
        n = self.n_items
        self.pop_count = np.asarray(state["pop_count"])
        self.recent_count = np.asarray(state["recent"])
        self.recent_t = float(state["recent_t"])
        self.tau = float(state["tau"])
        self.last_seen = np.asarray(state["last_seen"])
        self.first_seen = np.asarray(state["first_seen"])
        self.t_end = float(state["t_end"])
        self.cold = np.asarray(state["cold"], dtype=bool)
        self.gram = sp.csr_matrix(
            (state["gram_data"], state["gram_indices"], state["gram_indptr"]),
            shape=(n, n),
        )
        self.trans_raw = sp.csr_matrix(
            (state["trans_raw_data"], state["trans_raw_indices"],
             state["trans_raw_indptr"]),
            shape=(n, n),
        )  # fmt: skip

    # ----------------------------------------------------------- update
    def update(self, events: Sequence[OnlineEvent]) -> TableUpdate:
        """Add the positive ``events`` to the statistics and install the new
        tables in the model. Events should come in time order."""
        started = time.perf_counter()
        pos = [e for e in events if e.positive]
        if not pos:
            return TableUpdate(0, 0, 0, 0, time.perf_counter() - started)
        n = self.n_items
        items = np.asarray([e.item for e in pos], dtype=np.int64)
        times = np.asarray([float(e.timestamp) for e in pos], dtype=np.float64)
        for e in pos:
            self.model._check_items(e.history, n)
        self.model._check_items(items, n)
        # first consumptions: the item is not yet in the user's history
        new = np.asarray([not np.any(e.history == e.item) for e in pos])
        has_last = np.asarray([len(e.history) > 0 for e in pos])
        last = np.asarray([e.history[-1] if len(e.history) else -1 for e in pos])

        # counts and co-counts
        seen_before = self.pop_count > 0
        pop = self.pop_count.copy()
        np.add.at(pop, items[new], 1.0)
        g_rows, g_cols, touched = [], [], [items[new]]
        for e, is_new in zip(pos, new, strict=True):
            if not is_new or not len(e.history):
                continue
            hs = np.unique(e.history)
            g_rows += [np.full(len(hs), e.item), hs]
            g_cols += [hs, np.full(len(hs), e.item)]
            touched.append(e.history[-self.recent_items :])
        gram = self.gram
        if g_rows:
            r, c = np.concatenate(g_rows), np.concatenate(g_cols)
            delta = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
            gram = (gram + delta).tocsr()
        rows = np.unique(np.concatenate(touched))
        cooc = self._csr(self.model.tables, "cooc")
        extra: dict[str, np.ndarray] = {}
        if len(rows):
            fresh = top_k_cosine_rows(
                gram, rows, pop, k=self.neighbors, shrinkage=self.shrinkage
            )
            cooc = replace_rows(cooc, rows, fresh)
            extra = self._fold_in_cold(rows, fresh)

        # transitions: raw counts, then row-normalised
        trans_raw = self.trans_raw
        if has_last.any():
            delta = sp.csr_matrix(
                (np.ones(int(has_last.sum())), (last[has_last], items[has_last])),
                shape=(n, n),
            )
            trans_raw = (trans_raw + delta).tocsr()
        totals = np.asarray(trans_raw.sum(axis=1)).ravel()
        r_of = np.repeat(np.arange(n), np.diff(trans_raw.indptr))
        trans_norm = sp.csr_matrix(
            ((trans_raw.data / totals[r_of]).astype(np.float32),
             trans_raw.indices, trans_raw.indptr),
            shape=(n, n),
        )  # fmt: skip

        # recency: decayed recent count, last / first seen, end of time
        now = max(self.recent_t, float(times.max()))
        recent = self.recent_count * np.exp(-(now - self.recent_t) / self.tau)
        np.add.at(recent, items, np.exp(-(now - times) / self.tau))
        last_seen = self.last_seen.copy()
        np.maximum.at(last_seen, items, times)
        first_seen = self.first_seen.copy()
        first_seen[~seen_before] = np.inf
        np.minimum.at(first_seen, items, times)
        t_end = max(self.t_end, float(times.max()))
        seen = pop > 0
        seen[items] = True
        first_seen[~seen] = t_end

        self.pop_count, self.gram, self.trans_raw = pop, gram, trans_raw
        self.recent_count, self.recent_t = recent, now
        self.last_seen, self.first_seen, self.t_end = last_seen, first_seen, t_end
        self.model.replace_tables({**self.feature_tables(cooc, trans_norm), **extra})
        return TableUpdate(
            positives=len(pos),
            first_consumptions=int(new.sum()),
            transitions=int(has_last.sum()),
            cooc_rows=len(rows),
            seconds=time.perf_counter() - started,
        )

    def _fold_in_cold(
        self, rows: np.ndarray, fresh: sp.csr_matrix
    ) -> dict[str, np.ndarray]:
        """``{"emb": ...}`` with the cold items among ``rows`` folded in from
        their recomputed cosine rows ``fresh``; ``{}`` when there are none."""
        cold = self.cold[rows]
        if not cold.any():
            return {}
        emb = self.model.tables["emb"]
        folded = np.asarray(fresh[np.flatnonzero(cold)] @ emb)  # (C, E)
        norms = np.linalg.norm(folded, axis=1, keepdims=True)
        ok = norms[:, 0] > 0
        if not ok.any():
            return {}
        out = emb.copy()
        out[rows[cold][ok]] = (folded[ok] / norms[ok]).astype(emb.dtype)
        return {"emb": out}

    def refresh_cooc(self, rows: np.ndarray | None = None) -> int:
        """Recompute the cosine / top-k of ``rows`` (default: every row) from
        the co-counts and the current counts, and install the table. A full
        refresh costs one pass over the co-counts (e.g. nightly), far less
        than a rebuild from the events. Returns the rows refreshed."""
        rows = np.arange(self.n_items) if rows is None else np.unique(rows)
        fresh = top_k_cosine_rows(
            self.gram, rows, self.pop_count, k=self.neighbors, shrinkage=self.shrinkage
        )
        cooc = replace_rows(self._csr(self.model.tables, "cooc"), rows, fresh)
        data, indices, indptr = csr_parts(cooc)
        self.model.replace_tables(
            {
                "cooc_data": data.astype(np.float32),
                "cooc_indices": indices,
                "cooc_indptr": indptr,
                **self._fold_in_cold(rows, fresh),
            }
        )
        return len(rows)

    def feature_tables(
        self, cooc: sp.csr_matrix, trans: sp.csr_matrix
    ) -> dict[str, np.ndarray]:
        """The KAN tables derived from the statistics (and the two CSR tables)."""
        out = {
            "log_pop": np.log1p(self.pop_count).astype(np.float32),
            "recent_log_pop": np.log1p(self.recent_count).astype(np.float32),
            "last_seen": self.last_seen,
            "first_seen": self.first_seen,
            "t_end": np.array(self.t_end),
            "trans_row_total": np.asarray(self.trans_raw.sum(axis=1))
            .ravel()
            .astype(np.float32),
        }
        for name, m in (("cooc", cooc), ("trans", trans)):
            data, indices, indptr = csr_parts(m)
            out[f"{name}_data"] = data.astype(np.float32)
            out[f"{name}_indices"] = indices
            out[f"{name}_indptr"] = indptr
        return out
