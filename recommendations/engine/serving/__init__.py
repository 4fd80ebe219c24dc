"""The serving engine: a trained ensemble + indexes as one bundle, served per tier.

- :mod:`.tiers`: which tier a process serves on (explicit setting, detected
  capability, downgrade when a tier cannot load), the :class:`~.tiers.Tier`
  enum; no third-party imports, so the web process can decide at start-up;
- :mod:`.bundle`: the bundle's file layout and its pickle-free readers/writers
  (item metadata JSON, vocabulary, popularity, the ANN user encoder);
- :mod:`.build`: :func:`build_bundle` writes a bundle from a fitted ensemble;
- :mod:`.engine`: :class:`ServingEngine` loads a bundle on tier 1 (PyTorch),
  2 (ONNX Runtime) or 3 (FAISS + TF-IDF + popularity) and serves
  recommendations with external item ids in and out.

Framework-free like the rest of the engine; torch is imported only by tier 1
(tier 2 builds the ONNX inputs with the torch-free ``onnx/feeds.py``; tier 3
also skips scikit-learn and pandas; tests check ``sys.modules``). Importing
this package is cheap: :class:`ServingEngine` and the other names below load
:mod:`.engine` (numpy, scipy, FAISS) on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recommendations.engine.serving.engine import (
        ServedList,
        ServingEngine,
        UnknownItemError,
    )

__all__ = ["ServedList", "ServingEngine", "UnknownItemError"]


def __getattr__(name: str) -> Any:
    """The names in ``__all__``, from :mod:`.engine` on first access."""
    if name in __all__:
        from recommendations.engine.serving import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
