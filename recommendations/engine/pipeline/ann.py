"""FAISS nearest-neighbour search over item embeddings, Euclidean and hyperbolic.

:class:`AnnIndex` ranks items by inner product with a user vector (the score
of the dot-product models: SVD/EASE-style factors, LightGCN, SASRec's output
layer). Below ``exact_max_items`` it is an exact ``IndexFlatIP`` (a brute
force matrix product, faster than a graph at that size); above it an
approximate ``IndexHNSWFlat`` (Malkov & Yashunin, TPAMI 2018) with the inner
product metric. :func:`recall_at_k` measures an approximate index against
exact search.

Hyperbolic (Poincaré-ball) items are ranked by geodesic distance, which no
inner product of the ball coordinates reproduces. :class:`PoincareAnnIndex`
uses an *exact* lift instead of an approximation: on the ball of curvature
``-c``,

    d(u, x) = arcosh(1 + 2c |u - x|^2 / ((1 - c|u|^2)(1 - c|x|^2))) / sqrt(c)

is increasing in ``g(x) = |u - x|^2 / (1 - c|x|^2)`` for a fixed user ``u``,
and with ``a_x = 1 / (1 - c|x|^2)``

    -g(x) = q . p,   q = [-|u|^2, -1, 2u],   p = [a_x, |x|^2 a_x, a_x x],

so maximum inner product over the lifted ``(D + 2)``-dimensional item
vectors is exactly nearest geodesic distance (recall 1 with the flat index).
For HNSW the lifted vectors go through the MIPS -> L2 reduction
(:attr:`AnnConfig.l2_reduction`) and a 3x oversampled candidate list is
re-ranked by the exact distance (measured recall in the benchmark). The
simpler tangent-space map (``logmap0`` of items and user, then Euclidean
search) is kept as :func:`logmap0` for comparison: it is not exact, and the
benchmark reports its recall@100 beside the lift's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, cast

import faiss
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recommendations.engine.errors import DataError

FORMAT_VERSION = 1
EPS = 1e-7


class AnnConfig(BaseModel):
    """Which FAISS index to build and its HNSW parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["auto", "exact", "hnsw"] = "auto"
    """``auto``: exact up to ``exact_max_items`` items, HNSW above."""
    exact_max_items: int = Field(50_000, ge=0)
    hnsw_m: int = Field(32, ge=2)
    """Graph degree M (memory ~ N * M * 8 bytes on top of the vectors)."""
    ef_construction: int = Field(200, ge=1)
    ef_search: int = Field(256, ge=1)
    """Search beam; must exceed the k asked for (100-300 candidates)."""
    l2_reduction: bool = False
    """HNSW only: search maximum inner product as L2 nearest neighbour over
    ``[p, sqrt(M^2 - |p|^2)]`` (Bachrach et al., RecSys 2014): the same
    ranking, with the graph built in a metric space. Off by default: on SVD
    factors and Gaussian vectors it *lost* recall against raw-IP HNSW (see
    benchmarks/pipeline_bench.py); :class:`PoincareAnnIndex` needs it, because
    raw-IP HNSW over the lifted hyperbolic points found almost nothing."""


def _hnsw(index: faiss.Index) -> faiss.HNSW:
    """The graph of an HNSW index (``downcast_index`` returns the concrete
    ``IndexHNSWFlat``; faiss's stub types it as the base ``Index``)."""
    return cast(faiss.IndexHNSW, faiss.downcast_index(index)).hnsw


class AnnIndex:
    """Inner-product top-k over item vectors (row = dense item index)."""

    def __init__(
        self,
        index: faiss.Index,
        kind: str,
        ef_search: int = 256,
        max_norm: float | None = None,
    ) -> None:
        self.index = index
        self.kind = kind
        self.max_norm = max_norm  # set when the L2 reduction is used
        if kind == "hnsw":
            _hnsw(index).efSearch = ef_search

    @classmethod
    def build(cls, vectors: np.ndarray, config: AnnConfig | None = None) -> AnnIndex:
        config = config or AnnConfig()
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or not np.isfinite(x).all():
            raise DataError("item vectors must be a finite (n_items, dim) array")
        kind = config.kind
        if kind == "auto":
            kind = "exact" if len(x) <= config.exact_max_items else "hnsw"
        max_norm = None
        if kind == "exact":
            index: faiss.Index = faiss.IndexFlatIP(x.shape[1])
        elif config.l2_reduction:
            sq = (x.astype(np.float64) ** 2).sum(1)
            max_norm = float(np.sqrt(sq.max()))
            extra = np.sqrt(np.maximum(max_norm**2 - sq, 0.0))[:, None]
            x = np.ascontiguousarray(np.hstack([x, extra]), dtype=np.float32)
            index = faiss.IndexHNSWFlat(x.shape[1], config.hnsw_m, faiss.METRIC_L2)
        else:
            index = faiss.IndexHNSWFlat(
                x.shape[1], config.hnsw_m, faiss.METRIC_INNER_PRODUCT
            )
        if kind == "hnsw":  # built as an IndexHNSWFlat above
            cast(faiss.IndexHNSW, index).hnsw.efConstruction = config.ef_construction
        index.add(x)
        return cls(index, kind, config.ef_search, max_norm)

    @property
    def n_items(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d) - (self.max_norm is not None)

    def search_batch(
        self, queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(B, k)`` item indices and inner products, best first (-1 = none)."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self.max_norm is None:
            scores, ids = self.index.search(q, min(k, self.n_items))
            return ids.astype(np.int64), scores
        padded = np.hstack([q, np.zeros((len(q), 1), dtype=np.float32)])
        dist, ids = self.index.search(padded, min(k, self.n_items))
        # |q - p'|^2 = |q|^2 + M^2 - 2 q.p  ->  q.p
        q2 = (q.astype(np.float64) ** 2).sum(1, keepdims=True)
        scores = ((q2 + self.max_norm**2 - dist) / 2).astype(np.float32)
        return ids.astype(np.int64), scores

    def search(
        self, user_vector: np.ndarray, k: int, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` items for one user vector, ``exclude`` (seen items) left out."""
        n_excl = 0 if exclude is None else len(exclude)
        ids, scores = self.search_batch(user_vector, k + n_excl)
        ids, scores = ids[0], scores[0]
        keep = ids >= 0
        if exclude is not None and n_excl:
            keep &= ~np.isin(ids, exclude)
        return ids[keep][:k], scores[keep][:k]

    def save(self, folder: str | Path) -> None:
        """``index.faiss`` (``faiss.write_index``) and ``ann.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(folder / "index.faiss"))
        hnsw = self.kind == "hnsw"
        meta = {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "ef_search": _hnsw(self.index).efSearch if hnsw else 0,
            "max_norm": self.max_norm,
        }
        (folder / "ann.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> AnnIndex:
        folder = Path(folder)
        try:
            meta = json.loads((folder / "ann.json").read_text(encoding="utf-8"))
            index = faiss.read_index(str(folder / "index.faiss"))
        except (OSError, RuntimeError, ValueError) as exc:
            raise DataError(f"cannot load the ANN index from {folder}: {exc}") from exc
        if meta.get("format") != FORMAT_VERSION:
            raise DataError(f"{folder}: unsupported ANN format {meta.get('format')}")
        return cls(
            index, meta["kind"], meta.get("ef_search") or 256, meta.get("max_norm")
        )


def exact_top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries of each row, best first (numpy)."""
    scores = np.atleast_2d(scores)
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row of ``exact`` ids found in the same row of ``approx``."""
    approx, exact = np.atleast_2d(approx), np.atleast_2d(exact)
    if approx.shape[0] != exact.shape[0]:
        raise ValueError("approx and exact need the same number of rows")
    hits = [
        len(np.intersect1d(a[a >= 0], e)) / len(e)
        for a, e in zip(approx, exact, strict=True)
    ]
    return float(np.mean(hits))


# ------------------------------------------------------------------ hyperbolic
def poincare_distance(x: np.ndarray, y: np.ndarray, c: float = 1.0) -> np.ndarray:
    """All-pairs geodesic distance ``(B, D) x (N, D) -> (B, N)`` (numpy, float64).

    Same formula as ``models.hyperbolic.poincare_distance`` (torch).
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    x2 = (x * x).sum(1)[:, None]
    y2 = (y * y).sum(1)[None, :]
    diff2 = np.maximum(x2 + y2 - 2.0 * x @ y.T, 0.0)
    denom = np.maximum(1 - c * x2, EPS) * np.maximum(1 - c * y2, EPS)
    dist: np.ndarray = np.arccosh(
        np.maximum(1.0 + 2.0 * c * diff2 / denom, 1.0)
    ) / np.sqrt(c)
    return dist


def logmap0(x: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Logarithmic map at the origin: ball points -> tangent vectors."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    norm = np.maximum(np.linalg.norm(x, axis=1, keepdims=True), EPS)
    sc = np.sqrt(c)
    tangent: np.ndarray = np.arctanh(np.minimum(sc * norm, 1 - EPS)) * x / (sc * norm)
    return tangent


def lift_items(points: np.ndarray, c: float = 1.0) -> np.ndarray:
    """Item points -> ``[a, |x|^2 a, a x]`` with ``a = 1 / (1 - c|x|^2)``."""
    x = np.atleast_2d(np.asarray(points, dtype=np.float64))
    x2 = (x * x).sum(1, keepdims=True)
    a = 1.0 / np.maximum(1.0 - c * x2, EPS)
    return np.hstack([a, x2 * a, a * x])


def lift_queries(points: np.ndarray) -> np.ndarray:
    """User points -> ``[-|u|^2, -1, 2u]`` (see module docstring)."""
    u = np.atleast_2d(np.asarray(points, dtype=np.float64))
    u2 = (u * u).sum(1, keepdims=True)
    return np.hstack([-u2, -np.ones_like(u2), 2.0 * u])


class PoincareAnnIndex:
    """Nearest items by geodesic distance via the exact inner-product lift.

    Exact (flat) up to ``exact_max_items``: the lift makes it exact. Above,
    HNSW over the lifted vectors with the L2 reduction (HNSW with the raw
    inner product lost almost all recall on lifted points, whose norms grow
    without bound near the boundary), ``oversample * k`` candidates, then the
    exact distance re-ranks them.
    """

    def __init__(
        self,
        points: np.ndarray,
        c: float = 1.0,
        config: AnnConfig | None = None,
        oversample: int = 3,
    ) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        if (np.sqrt(c) * np.linalg.norm(self.points, axis=1) >= 1).any():
            raise DataError("hyperbolic item points must lie inside the ball")
        self.c = c
        config = (config or AnnConfig()).model_copy(update={"l2_reduction": True})
        self.ann = AnnIndex.build(lift_items(self.points, c), config)
        self.oversample = oversample if self.ann.kind == "hnsw" else 1

    def search(
        self, user_point: np.ndarray, k: int, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` items and their exact geodesic distances (nearest first)."""
        ids, _ = self.ann.search(lift_queries(user_point), self.oversample * k, exclude)
        dist = poincare_distance(user_point, self.points[ids], self.c)[0]
        order = np.argsort(dist, kind="stable")[:k]
        return ids[order], dist[order]
