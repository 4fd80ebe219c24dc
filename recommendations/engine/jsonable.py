"""Engine values as plain JSON data: the one numpy -> JSON conversion."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np

__all__ = ["to_jsonable"]


def to_jsonable(value: Any, *, finite: bool = False) -> Any:
    """``value`` as what ``json.loads(json.dumps(value))`` would give back.

    numpy scalars become Python scalars, arrays (nested) lists, tuples lists,
    paths strings, and mapping keys strings the way ``json.dumps`` writes them
    (``1`` -> ``"1"``, ``True`` -> ``"true"``); containers are copied, recursively.
    ``finite=True`` also turns NaN and +/-inf into ``None`` (strict JSON, which
    ``json.dumps`` would otherwise write as ``NaN``). Any other value is returned
    as it is, so ``json.dumps`` still rejects what JSON cannot hold.
    """
    if isinstance(value, Mapping):
        return {_key(k): to_jsonable(v, finite=finite) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v, finite=finite) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist(), finite=finite)
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, PurePath):
        return str(value)
    if finite and isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _key(key: Any) -> Any:
    if isinstance(key, np.generic):
        key = key.item()
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, int | float):  # bool is an int
        return json.dumps(key)
    return key
