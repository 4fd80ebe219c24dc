"""Off-policy estimators (IPS, SNIPS, DR) and exposure-based propensities."""

from recommendations.engine.debias.estimators import (
    Estimate,
    dr,
    dr_terms,
    ips,
    snips,
)
from recommendations.engine.debias.propensity import (
    exposure_propensities,
    fit_popularity_power,
)

__all__ = [
    "Estimate",
    "dr",
    "dr_terms",
    "exposure_propensities",
    "fit_popularity_power",
    "ips",
    "snips",
]
