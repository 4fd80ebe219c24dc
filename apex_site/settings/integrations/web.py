"""The web request path: timing headers and the per-request caches.

What a request of the hot API endpoints reads from a cache instead of the
database, and for how long (``docs/ARCHITECTURE.md``, "The request path").
"""

from __future__ import annotations

from ..environment import env_choice, env_int

__all__ = [
    "APEX_HISTORY_CACHE_SECONDS",
    "APEX_JWT_USER_CACHE_SECONDS",
    "APEX_SERVER_TIMING",
]

# The Server-Timing header: `staff` callers only, `all` callers (benchmarks), `off`.
APEX_SERVER_TIMING = env_choice("APEX_SERVER_TIMING", "staff", ("staff", "all", "off"))
# A user's history (the ids the engine reads) stays cached this long; the
# writer (``learning``) drops it after each commit that changes it. 0: no cache.
APEX_HISTORY_CACHE_SECONDS = env_int("APEX_HISTORY_CACHE_SECONDS", 60, minimum=0)
# A JWT's user row stays cached this long (saving the user drops it). 0: no cache.
APEX_JWT_USER_CACHE_SECONDS = env_int("APEX_JWT_USER_CACHE_SECONDS", 300, minimum=0)
