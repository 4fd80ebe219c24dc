"""Serving tier 2: the neural scorers as ONNX graphs run by ONNX Runtime on CPU.

- :mod:`.export`: the plumbing every model's ``export_onnx`` uses (TorchScript
  exporter, dynamic axes, metadata, checker) and :class:`OnnxFeeds`, what a
  model's numpy pre-processing hands to the graph.
- :mod:`.scorer`: :class:`OnnxScorer`, the ``score(histories, candidates)``
  contract of the models, backed by an ``onnxruntime.InferenceSession``;
  :func:`save_for_serving` writes a model folder with its ONNX files.
- :mod:`.quantize`: dynamic INT8 quantisation and the measured per-model
  ``QUANTIZE`` decision.

Only :mod:`.export` is imported by the models (lazily); ``onnx`` and
``onnxruntime`` are imported where they are used.
"""

from recommendations.engine.onnx.export import OPSET, OnnxFeeds

__all__ = ["OPSET", "OnnxFeeds"]
