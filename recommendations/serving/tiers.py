"""Which serving tier this process runs, decided once at start.

Order of the rules: an explicit ``APEX_SERVING_TIER`` → detected capability
(CUDA with enough free memory → tier 1; else enough RAM and onnxruntime →
tier 2; else tier 3) → downgrade while the chosen tier's artifacts are missing
or fail to load (1 → 2 → 3), with exactly one WARNING per downgrade.

The probes are plain callables (``CapabilityProbes``) so tests replace them;
the default CUDA probe imports torch only when an NVIDIA driver is present,
so a CPU machine never pays for a torch import here, and importing this
module imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

T = TypeVar("T")

TIER_NAMES = {1: "pytorch", 2: "onnx", 3: "content"}
_ALIASES = {
    **{str(n): n for n in TIER_NAMES},
    **{f"tier{n}": n for n in TIER_NAMES},
    **{name: n for n, name in TIER_NAMES.items()},
}
AUTO = "auto"
MIB = 1 << 20


def parse_tier(value: str | int | None) -> int | None:
    """``1``/``2``/``3``, ``tier1``…, ``pytorch``/``onnx``/``content`` → 1..3;
    ``None``, ``""`` or ``auto`` → None (detect). Anything else stops start-up."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("", AUTO):
        return None
    if text not in _ALIASES:
        raise ImproperlyConfigured(
            f"APEX_SERVING_TIER={value!r} is not a serving tier: expected auto, "
            "1/2/3, tier1/tier2/tier3 or pytorch/onnx/content."
        )
    return _ALIASES[text]


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


# ---------------------------------------------------------------- the decision
@dataclass(frozen=True)
class TierDecision:
    """The tier a process serves with and why.

    ``requested`` is the explicit setting (None for auto); ``downgraded_from``
    the tier first chosen when artifacts forced a lower one; ``detected`` the
    probe results; ``device`` where tier 1 runs (``cuda`` or ``cpu``).
    """

    tier: int
    name: str
    reason: str
    requested: str | None = None
    downgraded_from: int | None = None
    detected: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect(probes: CapabilityProbes | None = None) -> dict[str, Any]:
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


def _decision(tier: int, reason: str, requested: str | None, detected: dict):
    device = "cuda" if tier == 1 and detected.get("cuda") else "cpu"
    return TierDecision(
        tier=tier,
        name=TIER_NAMES[tier],
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
    """The tier from the override or the detected capability (no downgrade yet)."""
    explicit = parse_tier(requested)
    detected = detect(probes)
    raw = None if explicit is None else str(requested)
    if explicit is not None:
        return _decision(explicit, f"APEX_SERVING_TIER={raw}", raw, detected)
    if detected["cuda"] and detected["cuda_free_mb"] >= min_vram_mb:
        return _decision(
            1,
            f"CUDA device with {detected['cuda_free_mb']} MiB free "
            f"(>= {min_vram_mb} MiB)",
            None,
            detected,
        )
    no_gpu = (
        f"CUDA device with only {detected['cuda_free_mb']} MiB free "
        f"(< {min_vram_mb} MiB)"
        if detected["cuda"]
        else f"no CUDA ({detected['cuda_reason']})"
    )
    if detected["ram_total_mb"] >= min_ram_mb and detected["onnxruntime"]:
        return _decision(
            2,
            f"{no_gpu}; {detected['ram_total_mb']} MiB RAM (>= {min_ram_mb} MiB) "
            "and onnxruntime importable",
            None,
            detected,
        )
    why = (
        f"{detected['ram_total_mb']} MiB RAM (< {min_ram_mb} MiB)"
        if detected["ram_total_mb"] < min_ram_mb
        else "onnxruntime is not importable"
    )
    return _decision(3, f"{no_gpu}; {why}", None, detected)


def select_tier_from_settings(probes: CapabilityProbes | None = None) -> TierDecision:
    from django.conf import settings

    return select_tier(
        settings.APEX_SERVING_TIER,
        min_vram_mb=settings.APEX_SERVING_MIN_VRAM_MB,
        min_ram_mb=settings.APEX_SERVING_MIN_RAM_MB,
        probes=probes,
    )


# ---------------------------------------------------------------- downgrade
class TierUnavailable(Exception):
    """Raised by a load attempt when the tier's artifacts are missing."""


class NoTierLoadable(Exception):
    """Every tier from the chosen one down to 3 failed to load."""

    def __init__(self, failures: dict[int, str]) -> None:
        self.failures = failures
        text = "; ".join(f"tier {t}: {why}" for t, why in failures.items())
        super().__init__(f"No serving tier could be loaded ({text}).")


def _precondition(tier: int, detected: dict[str, Any]) -> str | None:
    """Why ``tier`` cannot run at all in this process, or None."""
    if tier == 1 and detected.get("torch") is False:
        return "torch is not installed"
    if tier == 2 and detected.get("onnxruntime") is False:
        return "onnxruntime is not importable"
    return None


def load_with_downgrade(
    decision: TierDecision, attempt: Callable[[TierDecision], T]
) -> tuple[TierDecision, T]:
    """Call ``attempt`` for the chosen tier, then each lower one, until one loads.

    Each step down logs exactly one WARNING naming both tiers and the cause.
    Returns the tier that loaded (``downgraded_from`` set when it is not the
    chosen one) and what ``attempt`` returned.
    """
    failures: dict[int, str] = {}
    tier = decision.tier
    while True:
        current = (
            decision
            if tier == decision.tier
            else replace(
                decision,
                tier=tier,
                name=TIER_NAMES[tier],
                device="cpu",
                downgraded_from=decision.tier,
                reason=f"downgraded from tier {decision.tier}: "
                + "; ".join(f"tier {t}: {why}" for t, why in failures.items()),
            )
        )
        cause = _precondition(tier, decision.detected)
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
        if tier == 3:
            raise NoTierLoadable(failures)
        logger.warning(
            "serving tier %d (%s) unavailable, downgrading to tier %d (%s): %s",
            tier,
            TIER_NAMES[tier],
            tier + 1,
            TIER_NAMES[tier + 1],
            cause,
        )
        tier += 1
