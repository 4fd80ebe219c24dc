""":class:`OnnxScorer`: a saved model folder scored by ONNX Runtime on CPU.

A serving folder is what :func:`save_for_serving` writes: the model's own
``model.json`` + ``state.npz`` (:meth:`Recommender.save`), ``model.onnx``
(FP32) and, where :data:`~recommendations.engine.onnx.quantize.QUANTIZE` says
INT8 pays, ``model.int8.onnx``. The scorer reads the model's vocabulary
and builds its inputs (:mod:`.feeds`), and runs the graph in an
``onnxruntime.InferenceSession``; it honours the models' contract,
``score(histories, candidates=None) -> float32 (B, N) | (B, C)``.

The scorer does not import the model's class: it reads ``model.json`` and
the arrays its feeds need from ``state.npz`` and builds the inputs with the
torch-free :mod:`.feeds`, so serving tier 2 never imports torch. Only a model
whose feeds need torch (DiffRec with inference noise) is loaded through
:meth:`Recommender.load`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recommendations.engine.data.interactions import History, Vocabulary, as_histories
from recommendations.engine.errors import ConfigError
from recommendations.engine.models.base import Recommender  # torch-free
from recommendations.engine.onnx.feeds import FeedBuilder, feed_builder

logger = logging.getLogger(__name__)

FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
Precision = Literal["auto", "fp32", "int8"]


def save_for_serving(
    model: Recommender, folder: str | Path, *, int8: bool | None = None
) -> dict[str, Path]:
    """Save ``model`` with its ONNX graph(s) into ``folder``.

    ``int8``: also write the dynamically quantised graph; ``None`` follows the
    measured per-model decision (:data:`~.quantize.QUANTIZE`).
    Returns the written files by role (``model``, ``fp32``, maybe ``int8``).
    """
    from recommendations.engine.onnx.quantize import QUANTIZE, quantize_int8

    out = Path(folder)
    files = {"model": model.save(out), "fp32": model.export_onnx(out / FP32_FILE)}
    if QUANTIZE.get(model.name, False) if int8 is None else int8:
        files["int8"] = quantize_int8(files["fp32"], out / INT8_FILE)
    return files


class OnnxScorer:
    """The scoring contract of a model, run by ONNX Runtime (CPU provider).

    Args:
        folder: a model folder (``Recommender.save``) holding the ONNX file(s).
        precision: ``fp32``, ``int8``, or ``auto`` (INT8 when its file exists,
            else FP32).
        onnx_path: an explicit graph file (overrides ``precision``).
        threads: ONNX Runtime intra-op threads (1 by default: serving
            processes scale out by workers, not by threads per request).
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        precision: Precision = "auto",
        onnx_path: str | Path | None = None,
        threads: int = 1,
    ) -> None:
        import onnxruntime as ort

        self.folder = Path(folder)
        meta = json.loads((self.folder / "model.json").read_text())
        self._name = str(meta["model"])
        self._items = Vocabulary(np.asarray(meta["item_ids"]))
        self._model: Recommender | None = None
        with np.load(self.folder / "state.npz", allow_pickle=False) as state:
            feeds = feed_builder(
                self._name, config=meta["config"], state=state,
                n_items=len(self._items), n_users=int(meta["n_users"]),
            )  # fmt: skip
        if feeds is None:  # no torch-free feeds: the model class builds them
            feeds = getattr(self.model, "onnx_feeds", None)
            if feeds is None:
                raise ConfigError(f"{self._name} has no ONNX graph (numpy model)")
        self._feeds: FeedBuilder = feeds
        self.path = self._resolve(precision, onnx_path)
        self.precision = "int8" if self.path.name == INT8_FILE else "fp32"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )
        self._check_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.input_names = {i.name for i in self.session.get_inputs()}

    def _resolve(self, precision: Precision, onnx_path: str | Path | None) -> Path:
        if onnx_path is not None:
            path = Path(onnx_path)
        elif precision == "auto":
            int8 = self.folder / INT8_FILE
            path = int8 if int8.exists() else self.folder / FP32_FILE
        elif precision in ("fp32", "int8"):
            path = self.folder / (INT8_FILE if precision == "int8" else FP32_FILE)
        else:
            raise ConfigError(f"unknown precision {precision!r}; use auto|fp32|int8")
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX graph at {path}")
        return path

    def _check_metadata(self, meta: dict[str, str]) -> None:
        model, n_items = meta.get("apex_model"), meta.get("apex_n_items")
        if model != self.name or n_items != str(self.n_items):
            raise ConfigError(
                f"{self.path} was exported from {model!r} with {n_items} items, "
                f"not {self.name!r} with {self.n_items}"
            )

    @property
    def model(self) -> Recommender:
        """The saved model itself, loaded on first use (imports its class, and
        torch for the neural ones; scoring does not need it)."""
        if self._model is None:
            self._model = Recommender.load(self.folder)
        return self._model

    @property
    def name(self) -> str:
        return self._name

    @property
    def n_items(self) -> int:
        return len(self._items)

    @property
    def items(self) -> Vocabulary:
        """The model's item vocabulary (external id <-> dense index)."""
        return self._items

    def score(
        self,
        histories: Sequence[History | Sequence[int] | np.ndarray],
        candidates: np.ndarray | Sequence[int] | None = None,
    ) -> np.ndarray:
        """Same contract as :meth:`Recommender.score` (``(B, N)`` or ``(B, C)``)."""
        hs = as_histories(histories)
        n = self.n_items
        for h in hs:
            Recommender._check_items(h.items, n)
        cand = None
        if candidates is not None:
            cand = np.asarray(candidates, dtype=np.int64)
            Recommender._check_items(cand.ravel(), n)
        if not hs:
            width = n if cand is None else cand.shape[-1]
            return np.zeros((0, width), dtype=np.float32)
        if cand is not None and cand.ndim == 1:
            cand = np.broadcast_to(cand, (len(hs), len(cand)))
        feeds = self._feeds(hs, cand)
        scores = self.session.run(None, feeds.inputs)[0]
        scores = np.asarray(scores, dtype=np.float32)
        if feeds.per_candidate or cand is None:
            return scores
        return np.take_along_axis(scores, cand, axis=1)

    def score_ids(
        self, history_ids: Sequence[Any], candidate_ids: Sequence[Any] | None = None
    ) -> np.ndarray:
        """One history of external item ids; returns ``(N,)`` or ``(C,)``."""
        history: Sequence[int] | np.ndarray = (
            self.items.index(list(history_ids)) if len(history_ids) else []
        )
        cand = None if candidate_ids is None else self.items.index(list(candidate_ids))
        scores: np.ndarray = self.score([History(np.asarray(history))], cand)[0]
        return scores
