"""The engine is framework-free: importing it must not import Django."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_importing_the_engine_does_not_import_django() -> None:
    code = (
        "import sys, recommendations.engine, recommendations.engine.cli, "
        "recommendations.engine.models.sasrec, recommendations.engine.models.lightgcn, "
        "recommendations.engine.models.ensemble, recommendations.engine.pipeline; "
        "bad = sorted(m for m in sys.modules "
        "if m == 'django' or m.startswith('django.')); "
        "assert not bad, bad"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
