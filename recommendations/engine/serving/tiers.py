"""Which serving tier a process runs, and the step down when one cannot load.

The tiers (:class:`Tier`): 1 ``pytorch`` (the ensemble's PyTorch members,
on CUDA when there is room), 2 ``onnx`` (ONNX Runtime on CPU), 3 ``content``
(FAISS + TF-IDF + popularity, no model library).

Order of the rules: an explicit setting (``APEX_SERVING_TIER``) → detected
capability (CUDA with enough free memory → tier 1; else enough RAM and
onnxruntime → tier 2; else tier 3; :func:`detected_tier`, a pure function of
the numbers) → downgrade while the chosen tier's artifacts are missing or fail
to load (1 → 2 → 3, :func:`load_with_downgrade`), with exactly one WARNING
per downgrade.

Framework-free: the Django side (``recommendations/serving/tiers.py``) reads
the settings and calls these. The probes are plain callables
(:class:`CapabilityProbes`) so tests replace them; the default CUDA probe
imports torch only when an NVIDIA driver is present, so a CPU machine never
pays for a torch import here, and importing this module imports neither torch
nor onnxruntime (nor numpy).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import IntEnum
from typing import Any, TypeVar

from recommendations.engine.errors import ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")

TIER_SETTING = "APEX_SERVING_TIER"
"""The setting (and environment variable) that forces a tier; messages name it."""
AUTO = "auto"
MIB = 1 << 20


class Tier(IntEnum):
    """A serving tier; compares and hashes as its number (``Tier.TIER2 == 2``)."""

    TIER1 = 1
    TIER2 = 2
    TIER3 = 3

    @property
    def label(self) -> str:
        """``pytorch``, ``onnx`` or ``content``."""
        return TIER_NAMES[self]

    def lower(self) -> Tier | None:
        """The tier to fall back to, ``None`` below tier 3."""
        return None if self is Tier.TIER3 else Tier(self + 1)


TIER_NAMES: Mapping[int, str] = {
    Tier.TIER1: "pytorch",
    Tier.TIER2: "onnx",
    Tier.TIER3: "content",
}
"""Tier number -> name (what manifests and the API call the tiers)."""

_ALIASES: dict[str, Tier] = {
    **{str(int(t)): t for t in Tier},
    **{f"tier{int(t)}": t for t in Tier},
    **{t.label: t for t in Tier},
}


def parse_tier(value: str | int | None) -> Tier | None:
    """``1``/``2``/``3``, ``tier1``…, ``pytorch``/``onnx``/``content`` → the tier;
    ``None``, ``""`` or ``auto`` → None (detect). Anything else raises
    :class:`ConfigError`."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("", AUTO):
        return None
    if text not in _ALIASES:
        raise ConfigError(
            f"{TIER_SETTING}={value!r} is not a serving tier: expected auto, "
            "1/2/3, tier1/tier2/tier3 or pytorch/onnx/content."
        )
    return _ALIASES[text]


# ---------------------------------------------------------------- the rules
def detected_tier(
    *,
    cuda: bool,
    cuda_free_mb: int,
    cuda_reason: str | None,
    ram_total_mb: int,
    onnxruntime: bool,
    min_vram_mb: int,
    min_ram_mb: int,
) -> tuple[Tier, str]:
    """The tier the capabilities allow, and why (no explicit setting).

    CUDA with at least ``min_vram_mb`` MiB free → tier 1; else at least
    ``min_ram_mb`` MiB of RAM and an importable onnxruntime → tier 2; else 3.
    """
    if cuda and cuda_free_mb >= min_vram_mb:
        return Tier.TIER1, (
            f"CUDA device with {cuda_free_mb} MiB free (>= {min_vram_mb} MiB)"
        )
    no_gpu = (
        f"CUDA device with only {cuda_free_mb} MiB free (< {min_vram_mb} MiB)"
        if cuda
        else f"no CUDA ({cuda_reason})"
    )
    if ram_total_mb >= min_ram_mb and onnxruntime:
        return Tier.TIER2, (
            f"{no_gpu}; {ram_total_mb} MiB RAM (>= {min_ram_mb} MiB) "
            "and onnxruntime importable"
        )
    why = (
        f"{ram_total_mb} MiB RAM (< {min_ram_mb} MiB)"
        if ram_total_mb < min_ram_mb
        else "onnxruntime is not importable"
    )
    return Tier.TIER3, f"{no_gpu}; {why}"


def unavailable_reason(
    tier: Tier, *, torch: bool | None, onnxruntime: bool | None
) -> str | None:
    """Why ``tier`` cannot run at all in this process (``None``: it may), from
    the detected libraries (``None``: not probed)."""
    if tier == Tier.TIER1 and torch is False:
        return "torch is not installed"
    if tier == Tier.TIER2 and onnxruntime is False:
        return "onnxruntime is not importable"
    return None


# ---------------------------------------------------------------- probes
@dataclass(frozen=True)
class CudaInfo:
    available: bool
    free_bytes: int = 0
    total_bytes: int = 0
    device_name: str = ""
    reason: str = ""


def _nvidia_driver_present() -> bool:
    return (
        os.path.exists("/proc/driver/nvidia/version")
        or os.path.exists("/dev/nvidia0")
        or shutil.which("nvidia-smi") is not None
    )


def probe_cuda() -> CudaInfo:
    """Free and total memory of CUDA device 0, via torch (imported only here,
    and only when an NVIDIA driver is visible)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return CudaInfo(False, reason="CUDA_VISIBLE_DEVICES hides every GPU")
    if not _nvidia_driver_present():
        return CudaInfo(False, reason="no NVIDIA driver")
    if importlib.util.find_spec("torch") is None:
        return CudaInfo(False, reason="torch is not installed")
    try:
        torch = importlib.import_module("torch")
        if not torch.cuda.is_available():
            return CudaInfo(False, reason="torch sees no CUDA device")
        free, total = torch.cuda.mem_get_info(0)
        return CudaInfo(True, free, total, torch.cuda.get_device_name(0))
    except Exception as exc:  # a probe reports, never raises
        return CudaInfo(False, reason=f"{type(exc).__name__}: {exc}")


def probe_total_ram() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def probe_onnxruntime() -> bool:
    try:
        importlib.import_module("onnxruntime")
    except Exception:  # ImportError, or a broken shared library
        return False
    return True


def probe_torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


@dataclass(frozen=True)
class CapabilityProbes:
    cuda: Callable[[], CudaInfo] = probe_cuda
    total_ram: Callable[[], int] = probe_total_ram
    onnxruntime: Callable[[], bool] = probe_onnxruntime
    torch_installed: Callable[[], bool] = probe_torch_installed


def detect(probes: CapabilityProbes | None = None) -> dict[str, Any]:
    """What the probes report, in MiB (what :class:`TierDecision` records)."""
    probes = probes or CapabilityProbes()
    cuda = probes.cuda()
    return {
        "cuda": cuda.available,
        "cuda_device": cuda.device_name or None,
        "cuda_free_mb": cuda.free_bytes // MIB,
        "cuda_total_mb": cuda.total_bytes // MIB,
        "cuda_reason": cuda.reason or None,
        "ram_total_mb": probes.total_ram() // MIB,
        "onnxruntime": bool(probes.onnxruntime()),
        "torch": bool(probes.torch_installed()),
    }


# ---------------------------------------------------------------- the decision
@dataclass(frozen=True)
class TierDecision:
    """The tier a process serves with and why.

    ``requested`` is the explicit setting (None for auto); ``downgraded_from``
    the tier first chosen when artifacts forced a lower one; ``detected`` the
    probe results; ``device`` where tier 1 runs (``cuda`` or ``cpu``).
    """

    tier: Tier
    name: str
    reason: str
    requested: str | None = None
    downgraded_from: Tier | None = None
    detected: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _decision(
    tier: Tier, reason: str, requested: str | None, detected: dict[str, Any]
) -> TierDecision:
    device = "cuda" if tier == Tier.TIER1 and detected.get("cuda") else "cpu"
    return TierDecision(
        tier=tier,
        name=tier.label,
        reason=reason,
        requested=requested,
        detected=detected,
        device=device,
    )


def select_tier(
    requested: str | int | None = AUTO,
    *,
    min_vram_mb: int = 8192,
    min_ram_mb: int = 8192,
    probes: CapabilityProbes | None = None,
) -> TierDecision:
    """The tier from the explicit setting or the detected capability (no
    downgrade yet); an unknown ``requested`` raises :class:`ConfigError`."""
    explicit = parse_tier(requested)
    detected = detect(probes)
    if explicit is not None:
        raw = str(requested)
        return _decision(explicit, f"{TIER_SETTING}={raw}", raw, detected)
    tier, reason = detected_tier(
        cuda=detected["cuda"],
        cuda_free_mb=detected["cuda_free_mb"],
        cuda_reason=detected["cuda_reason"],
        ram_total_mb=detected["ram_total_mb"],
        onnxruntime=detected["onnxruntime"],
        min_vram_mb=min_vram_mb,
        min_ram_mb=min_ram_mb,
    )
    return _decision(tier, reason, None, detected)


# ---------------------------------------------------------------- downgrade
class TierUnavailable(Exception):
    """Raised by a load attempt when the tier's artifacts are missing."""


class NoTierLoadable(Exception):
    """Every tier from the chosen one down to 3 failed to load."""

    def __init__(self, failures: dict[Tier, str]) -> None:
        self.failures = failures
        text = "; ".join(f"tier {t}: {why}" for t, why in failures.items())
        super().__init__(f"No serving tier could be loaded ({text}).")


def load_with_downgrade(
    decision: TierDecision, attempt: Callable[[TierDecision], T]
) -> tuple[TierDecision, T]:
    """Call ``attempt`` for the chosen tier, then each lower one, until one loads.

    Each step down logs exactly one WARNING naming both tiers and the cause.
    Returns the tier that loaded (``downgraded_from`` set when it is not the
    chosen one) and what ``attempt`` returned.
    """
    failures: dict[Tier, str] = {}
    tier: Tier = decision.tier
    while True:
        current = (
            decision
            if tier == decision.tier
            else replace(
                decision,
                tier=tier,
                name=tier.label,
                device="cpu",
                downgraded_from=decision.tier,
                reason=f"downgraded from tier {decision.tier}: "
                + "; ".join(f"tier {t}: {why}" for t, why in failures.items()),
            )
        )
        cause = unavailable_reason(
            tier,
            torch=decision.detected.get("torch"),
            onnxruntime=decision.detected.get("onnxruntime"),
        )
        if cause is None:
            try:
                return current, attempt(current)
            except Exception as exc:  # any load failure moves one tier down
                cause = (
                    str(exc)
                    if isinstance(exc, TierUnavailable)
                    else f"{type(exc).__name__}: {exc}"
                )
        failures[tier] = cause
        lower = tier.lower()
        if lower is None:
            raise NoTierLoadable(failures)
        logger.warning(
            "serving tier %d (%s) unavailable, downgrading to tier %d (%s): %s",
            tier,
            tier.label,
            lower,
            lower.label,
            cause,
        )
        tier = lower
