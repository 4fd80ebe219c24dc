"""TF-IDF content model over item text, with cosine neighbours.

Each item's text (title, genres, overview, keywords, director and lead-cast
names, collection: whatever :meth:`ItemMetadata.text` knows) is vectorised
by scikit-learn's ``TfidfVectorizer``; rows are L2-normalised, so the cosine
of two items is the dot product of their rows.

Saved without pickle: ``content.json`` holds the vectoriser parameters and
the vocabulary (term -> column), ``idf.npy`` the idf weights and
``matrix.npz`` the item matrix (``scipy.sparse.save_npz``). Loading reads
the matrix only; the ``TfidfVectorizer`` (fixed vocabulary and idf, so new
text is vectorised exactly as before; a test checks identical vectors) is
rebuilt on first use, because serving scores items by their rows and never
vectorises text, and importing scikit-learn costs ~0.6 s of cold boot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from recommendations.engine.errors import DataError
from recommendations.engine.pipeline.items import ItemMetadata

if TYPE_CHECKING:  # imported where a vectoriser is built (not at serving load)
    from sklearn.feature_extraction.text import TfidfVectorizer

FORMAT_VERSION = 1


class ContentConfig(BaseModel):
    """``TfidfVectorizer`` settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ngram_range: tuple[int, int] = (1, 2)
    min_df: int = Field(1, ge=1)
    max_df: float = Field(0.9, gt=0, le=1.0)
    """Terms in more than this share of items (e.g. "the") carry no signal."""
    max_features: int | None = Field(100_000, ge=1)
    sublinear_tf: bool = True
    stop_words: str | None = "english"

    def vectorizer(self) -> TfidfVectorizer:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(
            ngram_range=self.ngram_range, min_df=self.min_df, max_df=self.max_df,
            max_features=self.max_features, sublinear_tf=self.sublinear_tf,
            stop_words=self.stop_words, dtype=np.float32,
        )  # fmt: skip


class ContentModel:
    """Fitted TF-IDF item matrix ``(n_items, n_terms)``, rows L2-normalised.

    ``vectorizer`` is either the fitted ``TfidfVectorizer`` or a zero-argument
    callable that builds it (what :meth:`load` passes, so scikit-learn is
    imported only when text is vectorised or the model saved).
    """

    def __init__(
        self,
        vectorizer: TfidfVectorizer | Callable[[], TfidfVectorizer],
        matrix: sp.csr_matrix,
    ) -> None:
        if callable(vectorizer) and not hasattr(vectorizer, "transform"):
            self._vectorizer, self._build = None, vectorizer
        else:
            self._vectorizer, self._build = vectorizer, None
        self.matrix = sp.csr_matrix(matrix, dtype=np.float32)

    @property
    def vectorizer(self) -> TfidfVectorizer:
        """The fitted vectoriser (built from the saved parameters on first use)."""
        if self._vectorizer is None:
            self._vectorizer = self._build()
        return self._vectorizer

    # ---------------------------------------------------------------- build
    @classmethod
    def fit(
        cls, texts: Sequence[str], config: ContentConfig | None = None
    ) -> ContentModel:
        """Fit the vectoriser on ``texts`` (position = dense item index)."""
        config = config or ContentConfig()
        vectorizer = config.vectorizer()
        if len(texts) == 1:  # max_df as a share needs more than one document
            vectorizer.set_params(max_df=1.0)
        try:
            matrix = vectorizer.fit_transform(list(texts))
        except ValueError as exc:  # empty vocabulary
            raise DataError(f"cannot fit the content model: {exc}") from exc
        return cls(vectorizer, matrix)

    @classmethod
    def from_metadata(
        cls, meta: ItemMetadata, config: ContentConfig | None = None
    ) -> ContentModel:
        return cls.fit(meta.texts(), config)

    @property
    def n_items(self) -> int:
        return int(self.matrix.shape[0])

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF vectors of new texts (same vocabulary and idf)."""
        return sp.csr_matrix(self.vectorizer.transform(list(texts)), dtype=np.float32)

    # ------------------------------------------------------------- queries
    def profile(
        self, items: np.ndarray, weights: np.ndarray | None = None
    ) -> np.ndarray:
        """Weighted mean of the items' rows, L2-normalised, ``(n_terms,)``."""
        items = np.asarray(items, dtype=np.int64)
        if weights is None:
            weights = np.ones(len(items), dtype=np.float32)
        row = sp.csr_matrix(np.asarray(weights, dtype=np.float32)[None, :])
        vec = np.asarray((row @ self.matrix[items]).todense()).ravel()
        norm = np.linalg.norm(vec)
        return vec / norm if norm > 0 else vec

    def scores(
        self, items: np.ndarray, candidates: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> np.ndarray:  # fmt: skip
        """Cosine of each candidate (default: every item) to the items' profile."""
        prof = self.profile(items, weights)
        rows = self.matrix if candidates is None else self.matrix[candidates]
        return np.asarray(rows @ prof, dtype=np.float64).ravel()

    def neighbours(
        self,
        items: np.ndarray,
        k: int,
        *,
        exclude: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` items by cosine to the profile of ``items`` (best first).

        ``items`` themselves and ``exclude`` are never returned; items with
        cosine 0 (nothing in common) are dropped.
        """
        items = np.asarray(items, dtype=np.int64)
        if len(items) == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        sims = self.scores(items, weights=weights)
        sims[items] = -np.inf
        if exclude is not None and len(exclude):
            sims[np.asarray(exclude, dtype=np.int64)] = -np.inf
        k = min(k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        top = top[sims[top] > 0]
        return top.astype(np.int64), sims[top]

    def similarity(
        self, items: np.ndarray, others: np.ndarray | None = None
    ) -> np.ndarray:
        """Item-item cosine ``(len(items), len(others))`` (``others`` = ``items``)."""
        a = self.matrix[np.asarray(items, dtype=np.int64)]
        b = a if others is None else self.matrix[np.asarray(others, dtype=np.int64)]
        return np.asarray((a @ b.T).todense(), dtype=np.float64)

    # ---------------------------------------------------------- save / load
    def save(self, folder: str | Path) -> None:
        """Write ``content.json``, ``idf.npy`` and ``matrix.npz`` (no pickle)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        params = _json_params(self.vectorizer.get_params())
        vocabulary = {str(t): int(j) for t, j in self.vectorizer.vocabulary_.items()}
        meta = {"format": FORMAT_VERSION, "params": params, "vocabulary": vocabulary}
        (folder / "content.json").write_text(json.dumps(meta), encoding="utf-8")
        np.save(
            folder / "idf.npy", np.asarray(self.vectorizer.idf_), allow_pickle=False
        )
        sp.save_npz(folder / "matrix.npz", self.matrix, compressed=True)

    @classmethod
    def load(cls, folder: str | Path) -> ContentModel:
        folder = Path(folder)
        try:
            meta = json.loads((folder / "content.json").read_text(encoding="utf-8"))
            idf = np.load(folder / "idf.npy", allow_pickle=False)
            matrix = sp.load_npz(folder / "matrix.npz")
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(
                f"cannot load the content model from {folder}: {exc}"
            ) from exc
        if meta.get("format") != FORMAT_VERSION:
            raise DataError(
                f"{folder}: unsupported content format {meta.get('format')}"
            )
        params = dict(meta["params"])
        params["ngram_range"] = tuple(params["ngram_range"])
        params["dtype"] = np.float32
        params["vocabulary"] = meta["vocabulary"]

        def vectorizer() -> TfidfVectorizer:
            from sklearn.feature_extraction.text import TfidfVectorizer

            fitted = TfidfVectorizer(**params)
            fitted.idf_ = idf
            return fitted

        return cls(vectorizer, matrix)


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    """The vectoriser parameters that are plain data (callables are not saved)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in ("dtype", "vocabulary"):
            continue
        if value is not None and not isinstance(
            value, str | int | float | bool | tuple
        ):
            raise DataError(f"vectoriser parameter {key}={value!r} cannot be saved")
        out[key] = list(value) if isinstance(value, tuple) else value
    return out
