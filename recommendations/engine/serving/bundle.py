"""The bundle folder's layout and its pickle-free readers / writers.

A bundle (what ``manage.py train`` publishes as one artifact version)::

    bundle.json             engine settings: members, weights, ANN member, blend
    ensemble/               Ensemble.save (tier 1; tier 2 reads its weights and
                            the numpy members from here)
    onnx/<member>/          save_for_serving: model.json, state.npz, model.onnx
                            [, model.int8.onnx] for every neural member with
                            weight > 0 (tier 2)
    ann/                    AnnIndex (index.faiss, ann.json) + encoder.npz
    content/                ContentModel (content.json, idf.npy, matrix.npz)
    items/metadata.json     ItemMetadata.build inputs, per dense item index
    items/vocab.json        external item ids, position = dense index
    items/popularity.npy    training interaction count per item

Nothing here imports torch: tier 3 reads only ``ann/``, ``content/``,
``items/`` and ``bundle.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from recommendations.engine.data.interactions import History
from recommendations.engine.errors import DataError
from recommendations.engine.jsonable import to_jsonable
from recommendations.engine.pipeline.items import ItemMetadata

BUNDLE_FORMAT = 1
BUNDLE_JSON = "bundle.json"
ENSEMBLE_DIR = "ensemble"
ONNX_DIR = "onnx"
ANN_DIR = "ann"
CONTENT_DIR = "content"
ITEMS_DIR = "items"
ENCODER_FILE = "encoder.npz"
METADATA_FILE = "metadata.json"
VOCAB_FILE = "vocab.json"
POPULARITY_FILE = "popularity.npy"


# ------------------------------------------------------------------ metadata
def save_metadata(meta: ItemMetadata, path: Path) -> None:
    """Write the :meth:`ItemMetadata.build` inputs as JSON (no pickle)."""
    n = meta.n_items
    doc = {
        "format": BUNDLE_FORMAT,
        "titles": list(meta.titles),
        "years": to_jsonable(meta.years, finite=True),
        "genres": [meta.genres_of(i) for i in range(n)],
        "directors": [to_jsonable(meta.directors_of(i)) for i in range(n)],
        "cast": [to_jsonable(meta.cast_of(i)) for i in range(n)],
        "collections": [int(c) if c >= 0 else None for c in meta.collections],
        "vote_average": to_jsonable(meta.vote_average, finite=True),
        "vote_count": [int(c) for c in meta.vote_count],
        "overviews": list(meta.overviews) or None,
        "keywords": [list(k) for k in meta.keywords] or None,
        "person_names": [[to_jsonable(k), v] for k, v in meta.person_names.items()],
        "collection_names": [[int(k), v] for k, v in meta.collection_names.items()],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")


def load_metadata(path: Path) -> ItemMetadata:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read item metadata {path}: {exc}") from exc
    if doc.get("format") != BUNDLE_FORMAT:
        raise DataError(f"{path}: unsupported metadata format {doc.get('format')}")
    return ItemMetadata.build(
        doc["titles"],
        years=doc["years"],
        genres=doc["genres"],
        directors=doc["directors"],
        cast=doc["cast"],
        collections=doc["collections"],
        vote_average=doc["vote_average"],
        vote_count=doc["vote_count"],
        overviews=doc.get("overviews"),
        keywords=doc.get("keywords"),
        person_names={k: v for k, v in doc["person_names"]},
        collection_names={int(k): v for k, v in doc["collection_names"]},
    )


# ---------------------------------------------------------------- vocabulary
def save_vocab(ids: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_jsonable(ids)), encoding="utf-8")


def load_vocab(path: Path) -> list[Any]:
    try:
        return list(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the item vocabulary {path}: {exc}") from exc


# ------------------------------------------------------------- user encoder
class UserEncoder:
    """A user's vector for the ANN index, from the history alone (numpy only).

    ``lightgcn``: LightGCN's own fold-in for a user unknown to the training
    graph, ``mean_k(fold @ item_layers[k]) / (K + 1)`` with the model's
    degree-normalised, recency-decayed fold weights (``LightGCN.onnx_feeds``);
    with the index built on LightGCN's final item vectors, the inner product
    *is* LightGCN's score, so the ANN's top k is LightGCN's top k.
    ``mean``: the recency-weighted mean of the history's item vectors (any
    other embedding, or SVD factors).
    """

    def __init__(
        self,
        kind: str,
        *,
        layers: np.ndarray | None = None,
        degree: np.ndarray | None = None,
        decay: float = 0.0,
        items: np.ndarray | None = None,
        max_items: int = 50,
    ) -> None:
        if kind not in ("lightgcn", "mean"):
            raise DataError(f"unknown user encoder {kind!r}")
        self.kind = kind
        self.layers = layers
        self.degree = degree
        self.decay = float(decay)
        self.items = items
        self.max_items = max_items

    def __call__(self, history: History) -> np.ndarray:
        items = np.asarray(history.items, dtype=np.int64)
        if self.kind == "lightgcn":
            assert self.layers is not None and self.degree is not None
            seq = np.unique(items) if self.decay == 0 else items
            deg = np.maximum(self.degree[seq], 1.0)
            base = 1.0 / np.sqrt(len(seq) * deg)
            w = base
            if self.decay > 0:
                age = np.arange(len(seq))[::-1]
                w = base * np.exp(-self.decay * age)
                w = w / w.sum() * base.sum()
            k = self.layers.shape[0]
            vec = np.einsum("i,kid->d", w.astype(np.float32), self.layers[:, seq])
            user: np.ndarray = (vec / (k + 1)).astype(np.float32)
            return user
        assert self.items is not None
        recent = items[-self.max_items :]
        w = 0.9 ** np.arange(len(recent))[::-1]
        user = (w @ self.items[recent] / w.sum()).astype(np.float32)
        return user

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "kind": np.array(self.kind),
            "decay": np.array(self.decay),
            "max_items": np.array(self.max_items),
        }
        if self.layers is not None:
            arrays["layers"] = self.layers.astype(np.float32)
        if self.degree is not None:
            arrays["degree"] = self.degree.astype(np.float32)
        if self.items is not None:
            arrays["items"] = self.items.astype(np.float32)
        np.savez(path, allow_pickle=False, **arrays)  # read back without pickle

    @classmethod
    def load(cls, path: Path) -> UserEncoder:
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read the user encoder {path}: {exc}") from exc
        return cls(
            str(data["kind"]),
            layers=data.get("layers"),
            degree=data.get("degree"),
            decay=float(data["decay"]),
            items=data.get("items"),
            max_items=int(data["max_items"]),
        )
