"""Where APEX keeps its code and its data; the other settings modules build on these."""

from __future__ import annotations

from pathlib import Path

from .environment import env_str

__all__ = ["BASE_DIR", "DATA_DIR"]

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = Path(env_str("APEX_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
