"""The recommendation engine: trained artifacts and how they are served.

The engine itself imports no Django; ``recommendations/serving/`` reads these.
"""

from __future__ import annotations

from pathlib import Path

from ..environment import env_choice, env_int, env_str
from ..paths import BASE_DIR

__all__ = [
    "APEX_ARTIFACTS_DIR",
    "APEX_RELOAD_POLL_SECONDS",
    "APEX_RESULT_CACHE_SIZE",
    "APEX_RETRAIN_HOURS",
    "APEX_SERVING_MIN_RAM_MB",
    "APEX_SERVING_MIN_VRAM_MB",
    "APEX_SERVING_TIER",
]

# Trained artifacts: <dir>/<version>/ with manifest.json, and a `current` pointer.
APEX_ARTIFACTS_DIR = Path(
    env_str("APEX_ARTIFACTS_DIR", str(BASE_DIR / "artifacts"))
).resolve()
# Serving tier: auto (detect) or 1/2/3, pytorch/onnx/content, tier1/tier2/tier3.
APEX_SERVING_TIER = env_choice(
    "APEX_SERVING_TIER",
    "auto",
    ("auto", "1", "2", "3", "tier1", "tier2", "tier3", "pytorch", "onnx", "content"),
)
# Detection thresholds: free VRAM for tier 1, total RAM for tier 2 (MiB).
APEX_SERVING_MIN_VRAM_MB = env_int("APEX_SERVING_MIN_VRAM_MB", 8192, minimum=0)
APEX_SERVING_MIN_RAM_MB = env_int("APEX_SERVING_MIN_RAM_MB", 8192, minimum=0)
# Engine answers cached per process (entries, LRU; 0 = off): see
# recommendations/serving/result_cache.py.
APEX_RESULT_CACHE_SIZE = env_int("APEX_RESULT_CACHE_SIZE", 20000, minimum=0)
# How often a serving process checks whether another one was told to reload
# (recommendations/serving/broadcast.py); 0 = never.
APEX_RELOAD_POLL_SECONDS = env_int("APEX_RELOAD_POLL_SECONDS", 2, minimum=0)
# Periodic retrain on the platform's log (Celery beat, the `training` queue;
# recommendations.model_train): every this many hours; 0 = off.
APEX_RETRAIN_HOURS = env_int("APEX_RETRAIN_HOURS", 0, minimum=0)
