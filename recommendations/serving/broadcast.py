"""Telling every serving process that the artifacts or the weights changed.

A reload request reaches one process (one uvicorn worker among several, one
machine among several). That process reloads itself, then bumps a
*generation* counter (activating an ``EnsembleWeights`` version in the admin
bumps it too, after its commit) in the shared cache (Redis in production; the embedded
mode has one process and a local-memory cache). Every serving process reads
the counter at most once per ``APEX_RELOAD_POLL_SECONDS`` (one cache GET,
from ``ServingRuntime.get()``) and, when it moved, brings itself in line in a
background thread while it keeps serving the old bundle:

- the store's ``current`` version differs from the loaded one: reload it
  (load beside the old one, then swap; the active weights come with it);
- otherwise: re-apply the active ``EnsembleWeights`` version to the loaded
  engine (``replace_payload``).

So a process that missed several announcements converges on the same
state as the one that answered the request, whatever the announcements were.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

GENERATION_KEY = "serving:generation"


def current_generation() -> int | None:
    """The shared counter (``None`` when no reload was ever announced or the
    cache cannot be read: then nothing happens)."""
    from django.core.cache import cache

    try:
        value: Any = cache.get(GENERATION_KEY)
    except Exception as exc:  # noqa: BLE001 - a cache outage must not stop serving
        logger.warning("could not read the serving generation: %s", exc)
        return None
    return None if value is None else int(value)


def announce() -> int | None:
    """Bump the shared counter after a local reload; returns the new value."""
    from django.core.cache import cache

    try:
        cache.add(GENERATION_KEY, 0, timeout=None)
        return int(cache.incr(GENERATION_KEY))
    except Exception as exc:  # noqa: BLE001 - the local reload already happened
        logger.warning(
            "reloaded this process but could not tell the others (%s); they "
            "keep serving the old state until they reload",
            exc,
        )
        return None
