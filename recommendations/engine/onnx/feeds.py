"""Torch-free ONNX feeds: the numpy pre-processing in front of every graph.

Each neural model exports only its network as an ONNX graph; the numpy code
that turns histories into the graph's inputs lives here, without torch, so
that serving tier 2 (:class:`~recommendations.engine.onnx.scorer.OnnxScorer`)
can build feeds from a saved model folder (``model.json`` + ``state.npz``)
without importing the model classes (importing torch costs ~2 s and ~600 MB
on the serving machines). The models' own ``onnx_feeds`` call the same
functions, so PyTorch and ONNX see identical inputs (the parity tests check
the scores).

:func:`feed_builder` maps a saved model to a :class:`FeedBuilder`; a model
without an entry in :data:`BUILDERS` has no torch-free feeds (the scorer then
falls back to loading the model class).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from recommendations.engine.data.interactions import History
from recommendations.engine.models.kan_features import KanFeatures
from recommendations.engine.onnx.inputs import FeedBuilder, OnnxFeeds

__all__ = [
    "BUILDERS",
    "FeedBuilder",
    "OnnxFeeds",
    "binary_matrix",
    "feed_builder",
    "hyperbolic_weights",
    "lightgcn_feeds",
    "lightgcn_fold_in",
    "neural_ode_pack",
    "sasrec_seq",
]


# ----------------------------------------------------------------- sasrec
def sasrec_seq(histories: list[History], max_len: int) -> np.ndarray:
    """Left-padded ``(B, W)`` item indices shifted by one (0 = padding),
    ``W = min(max_len, longest history)`` and at least 1."""
    width = max(1, min(max_len, max(len(h.items) for h in histories)))
    seq = np.zeros((len(histories), width), dtype=np.int64)
    for r, h in enumerate(histories):
        items = h.items[-width:] + 1
        if len(items):
            seq[r, width - len(items) :] = items
    return seq


# --------------------------------------------------------------- lightgcn
def lightgcn_fold_in(
    history: np.ndarray, item_degree: np.ndarray, decay: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fold-in items and weights ``w_i = 1 / sqrt(|H| d_i)`` of one history,
    recency-decayed (same total mass) when ``decay`` > 0."""
    items = np.unique(history) if decay == 0 else history
    if not len(items):
        return items, np.zeros(0)
    deg = np.maximum(item_degree, 1.0)
    base = 1.0 / np.sqrt(len(items) * deg[items])
    if decay <= 0:
        return items, base
    age = np.arange(len(items))[::-1]
    w = base * np.exp(-decay * age)
    return items, w / w.sum() * base.sum()


def lightgcn_feeds(
    histories: list[History],
    *,
    n_items: int,
    item_degree: np.ndarray,
    decay: float,
    user_table: np.ndarray,
) -> OnnxFeeds:
    """Fold-in weights ``(B, N)`` and layer-0 user vectors ``(B, D)`` (zero for a
    user not in training, i.e. ``History.user`` outside ``user_table``)."""
    fold = np.zeros((len(histories), n_items), dtype=np.float32)
    for r, h in enumerate(histories):
        items, w = lightgcn_fold_in(h.items, item_degree, decay)
        if len(items):
            np.add.at(fold[r], items, w.astype(np.float32))
    ego = np.zeros((len(histories), user_table.shape[1]), dtype=np.float32)
    for r, h in enumerate(histories):
        if h.user is not None and 0 <= h.user < len(user_table):
            ego[r] = user_table[h.user]
    return OnnxFeeds({"fold": fold, "ego": ego})


# ------------------------------------------------------------- hyperbolic
def hyperbolic_weights(
    histories: list[History], n_items: int, decay: float
) -> np.ndarray:
    """Row-stochastic ``(B, N)`` recency weights of the history items (0 if empty)."""
    weights = np.zeros((len(histories), n_items), dtype=np.float32)
    for r, h in enumerate(histories):
        if not len(h.items):
            continue
        age = np.arange(len(h.items))[::-1]
        np.add.at(weights[r], h.items, np.exp(-decay * age))
        weights[r] /= weights[r].sum()
    return weights


# ------------------------------------------------------------- neural_ode
def neural_ode_pack(
    histories: list[History], width: int, *, median_gap_s: float, time_unit_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded ``(B, W)`` shifted items and warped gaps ``log1p(gap / unit)``
    (the model's median gap where a history has no timestamps)."""
    seq = np.zeros((len(histories), width), dtype=np.int64)
    delta = np.zeros((len(histories), width), dtype=np.float32)
    for r, h in enumerate(histories):
        items = h.items[-width:]
        n = len(items)
        if not n:
            continue
        seq[r, width - n :] = items + 1
        if h.timestamps is not None and len(h.timestamps) == len(h.items):
            gaps = np.diff(h.timestamps[-width:].astype(np.float64), prepend=np.nan)
        else:
            gaps = np.full(n, median_gap_s)
        gaps[0] = 0.0  # nothing to evolve before the first event
        gaps = np.nan_to_num(gaps)
        delta[r, width - n :] = np.log1p(np.maximum(gaps, 0.0) / time_unit_s)
    return seq, delta


# -------------------------------------------------------------- diffusion
def binary_matrix(histories: list[History], n_items: int) -> np.ndarray:
    """Dense ``(B, N)`` float32 0/1 matrix of the items in each history."""
    x = np.zeros((len(histories), n_items), dtype=np.float32)
    for r, h in enumerate(histories):
        if len(h.items):
            x[r, h.items] = 1.0
    return x


# --------------------------------------------------------------- builders
Saved = Mapping[str, Any]
"""A saved model: ``config`` (its JSON dict), ``state`` (lazy ``state.npz``),
``n_items``, ``n_users``."""


def _sasrec(saved: Saved) -> FeedBuilder:
    max_len = int(saved["config"]["max_len"])
    return lambda hs, cand: OnnxFeeds({"seq": sasrec_seq(hs, max_len)})


def _lightgcn(saved: Saved) -> FeedBuilder:
    state, cfg = saved["state"], saved["config"]
    degree = np.asarray(state["_item_degree"], dtype=np.float32)
    decay = (
        float(state["_decay"])
        if "_decay" in state
        else float(cfg.get("history_decay") or 0.0)
    )
    table = np.asarray(state["user_emb.weight"], dtype=np.float32)
    table = table[: int(saved["n_users"])]
    n_items = int(saved["n_items"])

    def build(hs: list[History], cand: np.ndarray | None) -> OnnxFeeds:
        return lightgcn_feeds(
            hs, n_items=n_items, item_degree=degree, decay=decay, user_table=table
        )

    return build


def _hyperbolic(saved: Saved) -> FeedBuilder:
    state, cfg, n_items = saved["state"], saved["config"], int(saved["n_items"])
    decay = (
        float(state["_decay"])
        if "_decay" in state
        else float(cfg.get("history_decay") or 0.0)
    )
    return lambda hs, cand: OnnxFeeds(
        {"weights": hyperbolic_weights(hs, n_items, decay)}
    )


def _neural_ode(saved: Saved) -> FeedBuilder:
    state, cfg = saved["state"], saved["config"]
    gap = float(state["_median_gap_s"]) if "_median_gap_s" in state else 86_400.0
    width, unit = int(cfg["max_len"]), float(cfg["time_unit_s"])

    def build(hs: list[History], cand: np.ndarray | None) -> OnnxFeeds:
        seq, delta = neural_ode_pack(hs, width, median_gap_s=gap, time_unit_s=unit)
        return OnnxFeeds({"seq": seq, "delta": delta})

    return build


def _kan(saved: Saved) -> FeedBuilder:
    cfg, state = saved["config"], saved["state"]
    tables = {k[3:]: np.asarray(state[k]) for k in state if k.startswith("_t_")}
    feats = KanFeatures(
        tables,
        int(saved["n_items"]),
        recent=int(cfg["recent"]),
        recent_decay=float(cfg["recent_decay"]),
    )
    return feats.onnx_feeds


def _diffusion(saved: Saved) -> FeedBuilder | None:
    cfg, n_items = saved["config"], int(saved["n_items"])
    if cfg.get("inference_noise") and int(cfg.get("sampling_steps", 0)) > 0:
        return None  # the noise is drawn by torch's generator: no torch-free feeds
    return lambda hs, cand: OnnxFeeds({"x": binary_matrix(hs, n_items)})


BUILDERS: dict[str, Callable[[Saved], FeedBuilder | None]] = {
    "sasrec": _sasrec,
    "lightgcn": _lightgcn,
    "hyperbolic": _hyperbolic,
    "neural_ode": _neural_ode,
    "quantum_fluid": _neural_ode,
    "kan": _kan,
    "diffusion": _diffusion,
}
"""Model name -> torch-free builder; a builder returns ``None`` where the feeds
need torch (DiffRec's optional inference noise is drawn by torch's generator),
and the scorer then loads the model class."""


def feed_builder(
    name: str,
    *,
    config: Mapping[str, Any],
    state: Mapping[str, np.ndarray],
    n_items: int,
    n_users: int,
) -> FeedBuilder | None:
    """The torch-free feeds of a saved ``name`` model, or ``None`` if it has none."""
    make = BUILDERS.get(name)
    if make is None:
        return None
    saved = {"config": config, "state": state, "n_items": n_items, "n_users": n_users}
    return make(saved)
