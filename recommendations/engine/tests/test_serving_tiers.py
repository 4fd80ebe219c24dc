"""The tier rules as pure functions (the Django side's tests cover the
settings, the probes and the downgrade chain through its re-exports)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from recommendations.engine.errors import ConfigError
from recommendations.engine.serving.tiers import (
    TIER_NAMES,
    Tier,
    detected_tier,
    parse_tier,
    unavailable_reason,
)

ROOT = Path(__file__).resolve().parents[3]


def test_the_tiers_are_numbers_with_names() -> None:
    assert [int(t) for t in Tier] == [1, 2, 3]
    assert [t.label for t in Tier] == ["pytorch", "onnx", "content"]
    assert Tier.TIER2 == 2 and {2: "x"}[Tier.TIER2] == "x"
    assert f"tier {Tier.TIER3}" == "tier 3"
    assert TIER_NAMES[2] == "onnx"
    assert (Tier.TIER1.lower(), Tier.TIER2.lower(), Tier.TIER3.lower()) == (
        Tier.TIER2,
        Tier.TIER3,
        None,
    )


@pytest.mark.parametrize(
    ("value", "tier"),
    [
        (1, Tier.TIER1), ("2", Tier.TIER2), ("tier3", Tier.TIER3),
        (" ONNX ", Tier.TIER2), ("pytorch", Tier.TIER1),
        (None, None), ("", None), ("auto", None),
    ],
)  # fmt: skip
def test_parse_tier(value: str | int | None, tier: Tier | None) -> None:
    assert parse_tier(value) is tier


@pytest.mark.parametrize("value", ["0", "4", "gpu", "tier 1"])
def test_an_unknown_tier_is_a_config_error_naming_the_setting(value: str) -> None:
    with pytest.raises(ConfigError, match=f"APEX_SERVING_TIER={value!r}"):
        parse_tier(value)


def _detect(**numbers: object) -> tuple[Tier, str]:
    args: dict[str, object] = {
        "cuda": False, "cuda_free_mb": 0, "cuda_reason": "no NVIDIA driver",
        "ram_total_mb": 16384, "onnxruntime": True,
        "min_vram_mb": 8192, "min_ram_mb": 8192,
    }  # fmt: skip
    return detected_tier(**{**args, **numbers})  # type: ignore[arg-type]


def test_the_thresholds_are_inclusive() -> None:
    assert _detect(cuda=True, cuda_free_mb=8192)[0] is Tier.TIER1
    assert _detect(cuda=True, cuda_free_mb=8191)[0] is Tier.TIER2
    assert _detect(ram_total_mb=8192)[0] is Tier.TIER2
    assert _detect(ram_total_mb=8191)[0] is Tier.TIER3


def test_each_rule_says_why() -> None:
    assert _detect(cuda=True, cuda_free_mb=9000) == (
        Tier.TIER1,
        "CUDA device with 9000 MiB free (>= 8192 MiB)",
    )
    tier, reason = _detect(cuda=True, cuda_free_mb=100, onnxruntime=False)
    assert tier is Tier.TIER3
    assert reason == (
        "CUDA device with only 100 MiB free (< 8192 MiB); onnxruntime is not importable"
    )
    assert _detect()[1] == (
        "no CUDA (no NVIDIA driver); 16384 MiB RAM (>= 8192 MiB) "
        "and onnxruntime importable"
    )


def test_a_tier_without_its_library_cannot_run() -> None:
    assert unavailable_reason(Tier.TIER1, torch=False, onnxruntime=True)
    assert unavailable_reason(Tier.TIER2, torch=True, onnxruntime=False)
    assert unavailable_reason(Tier.TIER3, torch=False, onnxruntime=False) is None
    # not probed: try it
    assert unavailable_reason(Tier.TIER1, torch=None, onnxruntime=None) is None


def test_importing_the_tiers_loads_no_third_party_library() -> None:
    """The web process decides its tier at start-up: that must stay cheap."""
    code = (
        "import sys, recommendations.engine.serving.tiers; "
        "heavy = {'numpy', 'torch', 'onnxruntime', 'faiss', 'scipy', 'django'}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
