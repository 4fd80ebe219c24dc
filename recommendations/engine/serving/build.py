"""Write a serving bundle (see :mod:`.bundle` for the layout) from a fitted ensemble.

ANN retrieval uses **LightGCN** when it is a member: its item vectors are the
graph-propagated embeddings, and a new user's vector is an exact numpy
fold-in of the same model (:class:`~.bundle.UserEncoder`), so the FAISS top k
equals LightGCN's own top k with no torch at request time (tier 3 included).
Without LightGCN the member with item embeddings and the largest weight is
used (mean-of-history user vector); without any, truncated-SVD factors of the
training matrix, so tier 3 always has an index.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from recommendations.engine.data.interactions import Interactions
from recommendations.engine.models.ensemble import Ensemble
from recommendations.engine.pipeline.ann import AnnConfig, AnnIndex
from recommendations.engine.pipeline.content import ContentModel
from recommendations.engine.pipeline.items import ItemMetadata
from recommendations.engine.serving import bundle as B
from recommendations.engine.serving.bundle import UserEncoder

if TYPE_CHECKING:  # the model module imports torch
    from recommendations.engine.models.lightgcn import LightGCNConfig

logger = logging.getLogger(__name__)

TIER3_BLEND = {"ann": 0.6, "content": 0.3, "popularity": 0.1}
"""Tier 3 ranking: weights of the z-scored ANN inner product, TF-IDF cosine to
the recent history and log popularity over the candidates (see engine.py)."""


def _is_neural(model: Any) -> bool:
    return hasattr(model, "onnx_feeds")


def _rel_files(folder: Path, sub: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix() for p in sub.rglob("*") if p.is_file()
    )


def _ann_vectors(
    train: Interactions, ensemble: Ensemble, seed: int
) -> tuple[str, np.ndarray, UserEncoder]:
    """(member name, item vectors, user encoder) for the ANN index."""
    members = ensemble.members
    if "lightgcn" in members:
        model = members["lightgcn"]
        state = model.get_state()
        layers = np.asarray(state["_item_layers"], dtype=np.float32)  # (K+1, N, D)
        items = layers.mean(0)
        cfg = cast("LightGCNConfig", model.config)
        if cfg.cosine and cfg.loss == "softmax":
            items = items / np.maximum(
                np.linalg.norm(items, axis=1, keepdims=True), 1e-12
            )
        encoder = UserEncoder(
            "lightgcn",
            layers=layers[: cfg.layers],
            degree=np.asarray(state["_item_degree"], dtype=np.float32),
            decay=float(np.asarray(state.get("_decay", 0.0))),
        )
        return "lightgcn", items.astype(np.float32), encoder
    weights = ensemble.weight_dict()
    for name in sorted(members, key=lambda n: -weights.get(n, 0.0)):
        vectors = members[name].item_embeddings()
        if (
            vectors is not None
            and vectors.ndim == 2
            and vectors.shape[0] == train.n_items
        ):
            vectors = np.asarray(vectors, dtype=np.float32)
            return name, vectors, UserEncoder("mean", items=vectors)
    from scipy.sparse.linalg import svds

    matrix = train.matrix().astype(np.float64)
    k = max(1, min(32, min(matrix.shape) - 1))
    rng = np.random.default_rng(seed)
    _, s, vt = svds(matrix, k=k, v0=rng.standard_normal(min(matrix.shape)))
    vectors = (vt.T * np.sqrt(s)).astype(np.float32)
    return "svd", vectors, UserEncoder("mean", items=vectors)


def data_snapshot(train: Interactions) -> dict[str, Any]:
    ts = train.timestamps
    return {
        "dataset": train.name,
        "users": int(train.n_users),
        "items": int(train.n_items),
        "events": int(train.n_events),
        **train.ties.describe(),  # the order of same-second events
        "time_range": [
            datetime.fromtimestamp(int(ts.min()), UTC).isoformat() if len(ts) else None,
            datetime.fromtimestamp(int(ts.max()), UTC).isoformat() if len(ts) else None,
        ],
    }


def build_bundle(
    folder: str | Path,
    *,
    train: Interactions,
    ensemble: Ensemble,
    metadata: ItemMetadata,
    profile: str,
    seed: int,
    metrics: dict[str, Any] | None = None,
    ann_config: AnnConfig | None = None,
) -> dict[str, Any]:
    """Write the bundle into ``folder``; return the manifest fields.

    ``metadata`` must be indexed like ``train.items`` (the ensemble's
    vocabulary). The returned dict holds ``data_snapshot``, ``models``,
    ``metrics``, ``onnx_opset``, ``tiers`` (files per tier name, as
    ``ArtifactStore.commit`` expects) and ``notes``.
    """
    started = time.perf_counter()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if metadata.n_items != train.n_items or ensemble.n_items != train.n_items:
        raise ValueError(
            f"metadata ({metadata.n_items}), ensemble ({ensemble.n_items}) and "
            f"training data ({train.n_items}) must share the item vocabulary"
        )
    ensemble.save(out / B.ENSEMBLE_DIR)

    # tier 2: ONNX graphs of the neural members that carry weight
    from recommendations.engine.onnx import OPSET
    from recommendations.engine.onnx.quantize import QUANTIZE
    from recommendations.engine.onnx.scorer import save_for_serving

    weights = ensemble.weight_dict()
    onnx_members: dict[str, dict[str, Any]] = {}
    for name in ensemble.active_members():
        model = ensemble.members[name]
        if not _is_neural(model):
            continue
        t0 = time.perf_counter()
        files = save_for_serving(model, out / B.ONNX_DIR / name)
        onnx_members[name] = {
            "int8": "int8" in files,
            "quantize_decision": QUANTIZE.get(name, False),
            "export_seconds": round(time.perf_counter() - t0, 2),
        }
        logger.info("bundle: exported %s to ONNX %s", name, onnx_members[name])

    # tier 3 (and retrieval of every tier): ANN, content, metadata
    ann_member, vectors, encoder = _ann_vectors(train, ensemble, seed)
    index = AnnIndex.build(vectors, ann_config)
    index.save(out / B.ANN_DIR)
    encoder.save(out / B.ANN_DIR / B.ENCODER_FILE)
    content = ContentModel.from_metadata(metadata)
    content.save(out / B.CONTENT_DIR)
    B.save_metadata(metadata, out / B.ITEMS_DIR / B.METADATA_FILE)
    B.save_vocab(train.items.ids, out / B.ITEMS_DIR / B.VOCAB_FILE)
    np.save(out / B.ITEMS_DIR / B.POPULARITY_FILE, train.item_counts().astype(np.int64))

    gate = None if ensemble.gate is None else ensemble.gate.threshold
    settings: dict[str, Any] = {
        "format": B.BUNDLE_FORMAT,
        "members": list(ensemble.config.members),
        "weights": weights,
        "normalisation": ensemble.normalisation,
        "gate_threshold": gate if gate is not None and np.isfinite(gate) else None,
        "neural_members": [n for n, m in ensemble.members.items() if _is_neural(m)],
        "onnx_members": sorted(onnx_members),
        "ann_member": ann_member,
        "ann_kind": index.kind,
        "tier3_blend": TIER3_BLEND,
    }
    (out / B.BUNDLE_JSON).write_text(json.dumps(settings, indent=2), encoding="utf-8")

    shared = [B.BUNDLE_JSON] + [
        f
        for d in (B.ANN_DIR, B.CONTENT_DIR, B.ITEMS_DIR)
        for f in _rel_files(out, out / d)
    ]
    ensemble_files = _rel_files(out, out / B.ENSEMBLE_DIR)
    numpy_member_files = [
        f
        for f in ensemble_files
        if not f.startswith(f"{B.ENSEMBLE_DIR}/members/")
        or f.split("/")[2] not in settings["neural_members"]
    ]
    tiers = {
        "pytorch": ensemble_files + shared,
        "onnx": numpy_member_files + _rel_files(out, out / B.ONNX_DIR) + shared
        if (out / B.ONNX_DIR).exists()
        else numpy_member_files + shared,
        "content": shared,
    }
    models = {
        "ensemble": {
            "config": ensemble.config.model_dump(mode="json"),
            "weights": weights,
            "normalisation": ensemble.normalisation,
            "gate_threshold": settings["gate_threshold"],
        },
        **{
            name: {
                "config": model.config.model_dump(mode="json"),
                "weight": weights.get(name, 0.0),
                **({"onnx": onnx_members[name]} if name in onnx_members else {}),
            }
            for name, model in ensemble.members.items()
        },
        "ann": {"member": ann_member, "kind": index.kind, "dim": index.dim},
        "content": {"terms": int(content.matrix.shape[1])},
    }
    return {
        "data_snapshot": data_snapshot(train),
        "models": models,
        "metrics": dict(metrics or {}),
        "onnx_opset": OPSET if onnx_members else None,
        "tiers": tiers,
        "notes": {
            "profile": profile,
            "seed": seed,
            "build_seconds": round(time.perf_counter() - started, 2),
            "python": platform.python_version(),
        },
    }
