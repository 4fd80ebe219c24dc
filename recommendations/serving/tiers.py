"""Which serving tier this process runs, decided once at start: the Django side.

The tiers, the selection rules (explicit ``APEX_SERVING_TIER`` → detected
capability → downgrade 1 → 2 → 3 while a tier's artifacts are missing or fail
to load, one WARNING per step) and the probes are framework-free and live in
:mod:`recommendations.engine.serving.tiers`; this module reads the settings,
turns a malformed tier into a start-up error (``ImproperlyConfigured``) and
re-exports the rest for the serving runtime. ``logger`` is the engine's: the
downgrade WARNINGs come from there.

Importing this module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from recommendations.engine.errors import ConfigError
from recommendations.engine.serving import tiers as engine_tiers
from recommendations.engine.serving.tiers import (
    AUTO,
    MIB,
    TIER_NAMES,
    CapabilityProbes,
    CudaInfo,
    NoTierLoadable,
    Tier,
    TierDecision,
    TierUnavailable,
    detect,
    load_with_downgrade,
    logger,
)

__all__ = [
    "AUTO",
    "MIB",
    "TIER_NAMES",
    "CapabilityProbes",
    "CudaInfo",
    "NoTierLoadable",
    "Tier",
    "TierDecision",
    "TierUnavailable",
    "detect",
    "load_with_downgrade",
    "logger",
    "parse_tier",
    "select_tier",
    "select_tier_from_settings",
]


def parse_tier(value: str | int | None) -> Tier | None:
    """The engine's :func:`~recommendations.engine.serving.tiers.parse_tier`;
    a malformed value stops start-up (``ImproperlyConfigured``)."""
    try:
        return engine_tiers.parse_tier(value)
    except ConfigError as exc:
        raise ImproperlyConfigured(str(exc)) from exc


def select_tier(
    requested: str | int | None = AUTO,
    *,
    min_vram_mb: int = 8192,
    min_ram_mb: int = 8192,
    probes: CapabilityProbes | None = None,
) -> TierDecision:
    """The tier from the override or the detected capability (no downgrade yet);
    a malformed ``requested`` stops start-up (``ImproperlyConfigured``)."""
    try:
        return engine_tiers.select_tier(
            requested, min_vram_mb=min_vram_mb, min_ram_mb=min_ram_mb, probes=probes
        )
    except ConfigError as exc:
        raise ImproperlyConfigured(str(exc)) from exc


def select_tier_from_settings(probes: CapabilityProbes | None = None) -> TierDecision:
    from django.conf import settings

    return select_tier(
        settings.APEX_SERVING_TIER,
        min_vram_mb=settings.APEX_SERVING_MIN_VRAM_MB,
        min_ram_mb=settings.APEX_SERVING_MIN_RAM_MB,
        probes=probes,
    )
