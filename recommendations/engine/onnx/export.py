"""Shared ONNX export plumbing behind every model's ``export_onnx``.

A model exports only its neural graph (a small ``nn.Module`` wrapper around its
network whose inputs are plain tensors); the numpy pre-processing that turns
histories into those tensors stays in Python, torch-free, in :mod:`.feeds`
(``model.onnx_feeds`` calls it), so the ONNX scorer and ``model.score`` share
it and agree exactly.

The TorchScript exporter (``dynamo=False``) is used: it traces in well under a
second, handles every model here, and keeps symbolic batch / length axes
through ``Shape`` ops. The trace unrolls Python loops, so a loop over a
*data-dependent* length cannot stay dynamic (see ``neural_ode``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

from recommendations.engine.onnx import OPSET
from recommendations.engine.onnx.feeds import OnnxFeeds

if TYPE_CHECKING:
    from recommendations.engine.models.base import Recommender

__all__ = ["OPSET", "OUTPUT", "OnnxFeeds", "export_module"]

OUTPUT = "scores"
"""Name of every graph's single output."""


def export_module(
    model: Recommender,
    module: nn.Module,
    example: Sequence[torch.Tensor],
    path: str | Path,
    *,
    input_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
) -> Path:
    """Trace ``module(*example)`` to ``path`` (ONNX, opset :data:`OPSET`).

    The module is exported in eval mode (dropout off) and every submodule's
    train/eval flag is restored afterwards, so exporting mid-training is safe.
    The file carries ``apex_model`` and ``apex_n_items`` metadata, which the
    scorer checks against the model folder it is paired with.
    """
    import onnx

    _register_symbolics()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    axes = {k: dict(v) for k, v in dynamic_axes.items()}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the tracer warns about every Python int it records; the parity
            # tests (tests/test_onnx_parity.py) are what guards the graphs
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]  # torch: public, not in __all__
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            torch.onnx.export(
                module,
                tuple(example),
                str(out),
                dynamo=False,
                opset_version=OPSET,
                input_names=list(input_names),
                output_names=[OUTPUT],
                dynamic_axes={**axes, OUTPUT: {0: "batch"}},
                do_constant_folding=True,
            )
    finally:
        for m, training in modes:
            m.train(training)
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    meta = {"apex_model": model.name, "apex_n_items": str(model.n_items)}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(out))
    return out


def _register_symbolics() -> None:
    """Ops the TorchScript exporter lacks although ONNX has them (idempotent).

    ``aten::acosh`` (the Poincaré distance) maps one-to-one to ONNX ``Acosh``
    (opset 9+), which ONNX Runtime's CPU provider implements for float.
    """
    from torch.onnx import register_custom_op_symbolic  # type: ignore[attr-defined]  # torch: TorchScript exporter API, not in __all__

    register_custom_op_symbolic("aten::acosh", _acosh, OPSET)


class _SymbolicGraph(Protocol):
    """What a TorchScript symbolic function receives as ``g`` (torch's
    ``GraphContext``, a private class)."""

    def op(self, name: str, *inputs: object) -> object: ...


def _acosh(g: _SymbolicGraph, x: object) -> object:
    return g.op("Acosh", x)
