"""Serving, Django side: versioned artifacts, tier selection, the live bundle.

Importing this package (or any module in it) loads neither torch nor
onnxruntime; models load lazily on the first ``get_runtime().get()`` or an
explicit ``warm_up()``.
"""
