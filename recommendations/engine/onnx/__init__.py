"""Serving tier 2: the neural scorers as ONNX graphs run by ONNX Runtime on CPU.

- :mod:`.inputs`: :class:`OnnxFeeds` (a graph's inputs) and the
  :class:`~.inputs.FeedBuilder` protocol, numpy only;
- :mod:`.feeds`: the models' numpy pre-processing (what turns histories into
  a graph's inputs), torch-free, so tier 2 serves without importing torch.
- :mod:`.export`: the plumbing every model's ``export_onnx`` uses (TorchScript
  exporter, dynamic axes, metadata, checker); imports torch.
- :mod:`.scorer`: :class:`OnnxScorer`, the ``score(histories, candidates)``
  contract of the models, backed by an ``onnxruntime.InferenceSession``;
  :func:`save_for_serving` writes a model folder with its ONNX files.
- :mod:`.quantize`: dynamic INT8 quantisation and the measured per-model
  ``QUANTIZE`` decision.

Importing this package stays torch-free; ``torch``, ``onnx`` and
``onnxruntime`` are imported where they are used.
"""

OPSET = 17
"""ONNX opset of every exported graph (recorded in the artifacts manifest)."""

from recommendations.engine.onnx.inputs import OnnxFeeds  # noqa: E402

__all__ = ["OPSET", "OnnxFeeds"]
