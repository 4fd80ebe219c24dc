"""Blending the member models: normalisation, DR weight selection, the gate.

The model itself is :class:`recommendations.engine.models.ensemble.Ensemble`
(registered as ``ensemble``); this package holds the parts it is made of.
"""

from recommendations.engine.ensemble.gate import (
    GateCalibration,
    calibrate_gate,
    content_fallback_scores,
    disagreement,
)
from recommendations.engine.ensemble.normalise import normalise
from recommendations.engine.ensemble.selection import (
    BlendData,
    WeightSelection,
    choose_correction,
    search_jointly,
    search_weights,
    select_weights,
)

__all__ = [
    "BlendData",
    "GateCalibration",
    "WeightSelection",
    "calibrate_gate",
    "choose_correction",
    "content_fallback_scores",
    "disagreement",
    "normalise",
    "search_jointly",
    "search_weights",
    "select_weights",
]
