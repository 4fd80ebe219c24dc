"""The serving engine: a trained ensemble + indexes as one bundle, served per tier.

- :mod:`.bundle`: the bundle's file layout and its pickle-free readers/writers
  (item metadata JSON, vocabulary, popularity, the ANN user encoder);
- :mod:`.build`: :func:`build_bundle` writes a bundle from a fitted ensemble;
- :mod:`.engine`: :class:`ServingEngine` loads a bundle on tier 1 (PyTorch),
  2 (ONNX Runtime) or 3 (FAISS + TF-IDF + popularity) and serves
  recommendations with external item ids in and out.

Framework-free like the rest of the engine; torch is imported only by tier 1
(tier 2 builds the ONNX inputs with the torch-free ``onnx/feeds.py``; tier 3
also skips scikit-learn and pandas; tests check ``sys.modules``).
"""

from recommendations.engine.serving.engine import (
    ServedList,
    ServingEngine,
    UnknownItemError,
)

__all__ = ["ServedList", "ServingEngine", "UnknownItemError"]
