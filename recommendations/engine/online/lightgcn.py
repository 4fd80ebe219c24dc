"""Retrieval's user vector after an event: LightGCN fold-in of the history.

LightGCN needs no weight change online: a user's final vector is the mean of
the layer-0 vector (a training user's, zero for a new user) and the fold-in
layers ``sum_{i in H} w_i e_i^(k)`` of the current history (``w_i =
1 / sqrt(|H| d_i)``, recency-decayed as the model was tuned), exactly as
:meth:`LightGCN._score` computes it. The weights come from the same helper the
ONNX feeds use (:func:`~recommendations.engine.onnx.feeds.lightgcn_feeds`
through :meth:`LightGCN.onnx_feeds`), so the vector agrees with serving.
"""

from __future__ import annotations

import numpy as np

from recommendations.engine.data.interactions import History
from recommendations.engine.models.lightgcn import LightGCN


def lightgcn_user_vector(model: LightGCN, history: History) -> np.ndarray:
    """The ``(D,)`` float32 user vector for ``history``; its dot product with
    the (L2-normalised when the model scores cosines) item embeddings gives
    :meth:`LightGCN.score`. Store it in the retrieval index's user table."""
    cfg = model.config
    feeds = model.onnx_feeds([history], None).inputs  # fold (1, N), ego (1, D)
    item_layers = model._ensure_item_layers().detach().cpu().numpy()  # (K+1, N, D)
    layers = [feeds["ego"][0].astype(np.float64)]
    layers += [feeds["fold"][0] @ item_layers[k] for k in range(cfg.layers)]
    user = np.mean(layers, axis=0)
    if cfg.cosine and cfg.loss == "softmax":
        user = user / max(float(np.linalg.norm(user)), 1e-12)
    return np.asarray(user, dtype=np.float32)
