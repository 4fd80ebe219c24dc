"""Tier selection: the override, each detection rule, the downgrade chain."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from recommendations.serving import tiers
from recommendations.serving.tiers import (
    CapabilityProbes,
    CudaInfo,
    NoTierLoadable,
    TierUnavailable,
    load_with_downgrade,
    parse_tier,
    select_tier,
)

GIB = 1 << 30
ROOT = Path(__file__).resolve().parents[2]


def probes(*, cuda_free_gib=None, ram_gib=16, ort=True, torch=True):
    cuda = (
        CudaInfo(True, int(cuda_free_gib * GIB), 80 * GIB, "Fake H100")
        if cuda_free_gib is not None
        else CudaInfo(False, reason="no NVIDIA driver")
    )
    return CapabilityProbes(
        cuda=lambda: cuda,
        total_ram=lambda: int(ram_gib * GIB),
        onnxruntime=lambda: ort,
        torch_installed=lambda: torch,
    )


@pytest.mark.parametrize(
    ("value", "tier"),
    [
        ("1", 1), ("2", 2), ("3", 3),
        ("pytorch", 1), ("onnx", 2), ("content", 3),
        ("tier1", 1), ("TIER3", 3), (2, 2),
        ("auto", None), ("", None), (None, None),
    ],
)  # fmt: skip
def test_parse_tier_accepts_every_spelling(value, tier):
    assert parse_tier(value) == tier


@pytest.mark.parametrize("value", ["4", "0", "gpu", "tier 1", "onnx-int8"])
def test_an_invalid_tier_is_a_clear_startup_error(value):
    with pytest.raises(ImproperlyConfigured, match="APEX_SERVING_TIER"):
        select_tier(value, probes=probes())


def test_cuda_with_enough_free_memory_is_tier_1_on_cuda():
    decision = select_tier(min_vram_mb=8192, probes=probes(cuda_free_gib=40))
    assert (decision.tier, decision.name, decision.device) == (1, "pytorch", "cuda")
    assert decision.requested is None and decision.downgraded_from is None
    assert decision.detected["cuda_free_mb"] == 40 * 1024
    assert "40960 MiB free" in decision.reason


def test_cuda_with_too_little_free_memory_falls_to_tier_2():
    decision = select_tier(min_vram_mb=8192, probes=probes(cuda_free_gib=4))
    assert decision.tier == 2
    assert "only 4096 MiB free" in decision.reason


def test_no_gpu_enough_ram_and_onnxruntime_is_tier_2():
    decision = select_tier(min_ram_mb=8192, probes=probes(ram_gib=8))
    assert (decision.tier, decision.name, decision.device) == (2, "onnx", "cpu")
    assert "no CUDA (no NVIDIA driver)" in decision.reason


def test_too_little_ram_is_tier_3():
    decision = select_tier(min_ram_mb=8192, probes=probes(ram_gib=7.9))
    assert (decision.tier, decision.name) == (3, "content")
    assert "< 8192 MiB" in decision.reason


def test_no_onnxruntime_is_tier_3():
    decision = select_tier(probes=probes(ram_gib=64, ort=False))
    assert decision.tier == 3
    assert "onnxruntime is not importable" in decision.reason


@pytest.mark.parametrize(("requested", "tier"), [("1", 1), ("onnx", 2), ("3", 3)])
def test_the_override_beats_detection(requested, tier):
    decision = select_tier(requested, probes=probes(cuda_free_gib=40))
    assert decision.tier == tier
    assert decision.requested == requested
    assert "APEX_SERVING_TIER" in decision.reason


def test_tier_1_forced_without_a_gpu_runs_on_the_cpu():
    decision = select_tier("pytorch", probes=probes())
    assert (decision.tier, decision.device) == (1, "cpu")


def test_the_decision_is_frozen():
    decision = select_tier(probes=probes())
    with pytest.raises(AttributeError):
        decision.tier = 1


def test_settings_drive_the_thresholds_and_override(settings):
    settings.APEX_SERVING_TIER = "auto"
    settings.APEX_SERVING_MIN_RAM_MB = 32 * 1024
    assert tiers.select_tier_from_settings(probes(ram_gib=16)).tier == 3
    settings.APEX_SERVING_MIN_RAM_MB = 1024
    assert tiers.select_tier_from_settings(probes(ram_gib=16)).tier == 2
    settings.APEX_SERVING_TIER = "content"
    assert tiers.select_tier_from_settings(probes(ram_gib=16)).tier == 3


# ------------------------------------------------------------------ downgrade
def _warnings(caplog):
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == tiers.logger.name
    ]


def test_a_tier_that_loads_is_kept_without_a_warning(caplog):
    chosen = select_tier(probes=probes(cuda_free_gib=40))
    with caplog.at_level(logging.WARNING):
        decision, payload = load_with_downgrade(chosen, lambda t: f"model@{t.tier}")
    assert decision == chosen and payload == "model@1"
    assert _warnings(caplog) == []


def test_missing_tier_1_artifacts_downgrade_once_to_tier_2(caplog):
    chosen = select_tier(probes=probes(cuda_free_gib=40))

    def attempt(tier):
        if tier.tier == 1:
            raise TierUnavailable("no pytorch artifacts")
        return "onnx session"

    with caplog.at_level(logging.WARNING):
        decision, payload = load_with_downgrade(chosen, attempt)
    assert (decision.tier, decision.name, decision.device) == (2, "onnx", "cpu")
    assert decision.downgraded_from == 1
    assert "no pytorch artifacts" in decision.reason
    assert payload == "onnx session"
    [warning] = _warnings(caplog)
    assert "tier 1 (pytorch)" in warning.getMessage()
    assert "tier 2 (onnx)" in warning.getMessage()


def test_load_failures_walk_down_to_tier_3_with_one_warning_each(caplog):
    chosen = select_tier("1", probes=probes(cuda_free_gib=40))
    tried = []

    def attempt(tier):
        tried.append(tier.tier)
        if tier.tier < 3:
            raise RuntimeError(f"tier {tier.tier} exploded")
        return "faiss"

    with caplog.at_level(logging.WARNING):
        decision, _ = load_with_downgrade(chosen, attempt)
    assert tried == [1, 2, 3]
    assert (decision.tier, decision.downgraded_from) == (3, 1)
    assert decision.requested == "1"
    messages = [w.getMessage() for w in _warnings(caplog)]
    assert len(messages) == 2
    assert "RuntimeError: tier 1 exploded" in messages[0]
    assert "RuntimeError: tier 2 exploded" in messages[1]


def test_tier_2_is_skipped_when_onnxruntime_is_missing(caplog):
    chosen = select_tier("2", probes=probes(ort=False))
    tried = []
    with caplog.at_level(logging.WARNING):
        decision, _ = load_with_downgrade(chosen, lambda t: tried.append(t.tier))
    assert tried == [3]
    assert (decision.tier, decision.downgraded_from) == (3, 2)
    [warning] = _warnings(caplog)
    assert "onnxruntime is not importable" in warning.getMessage()


def test_when_no_tier_loads_every_cause_is_reported(caplog):
    chosen = select_tier("2", probes=probes())

    def attempt(tier):
        raise TierUnavailable(f"nothing for {tier.name}")

    with caplog.at_level(logging.WARNING), pytest.raises(NoTierLoadable) as info:
        load_with_downgrade(chosen, attempt)
    assert info.value.failures == {2: "nothing for onnx", 3: "nothing for content"}
    assert len(_warnings(caplog)) == 1  # 2 -> 3; there is nothing below 3


# ------------------------------------------------------------------ imports
def test_importing_serving_loads_no_model_library():
    """Management commands and migrate import the app; they must not load torch."""
    code = (
        "import os, sys, django\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'apex_site.settings.test')\n"
        "django.setup()\n"
        "import recommendations.serving, recommendations.serving.artifacts\n"
        "import recommendations.serving.tiers, recommendations.serving.runtime\n"
        "import recommendations.api.artifacts, apex_site.urls\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'onnxruntime', 'faiss'})\n"
        "print('LOADED', loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "LOADED []" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("value", ["gpu", "4"])
def test_an_invalid_environment_value_stops_start_up(value):
    code = (
        "import os, django\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'apex_site.settings.test')\n"
        "django.setup()\n"
    )
    env = {**os.environ, "APEX_SERVING_TIER": value}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert f"APEX_SERVING_TIER={value!r} is malformed" in out.stderr


def test_the_default_probes_run_here_without_raising():
    """The real probes on this machine: well-formed, whatever the hardware."""
    detected = tiers.detect()
    assert detected["ram_total_mb"] > 0
    assert isinstance(detected["cuda"], bool)
    assert isinstance(detected["onnxruntime"], bool)
    if not detected["cuda"]:
        assert detected["cuda_reason"]
