"""Where a request's time goes: the ``Server-Timing`` header.

``ServerTimingMiddleware`` (outermost in ``MIDDLEWARE``) gives each request an
empty ``apex_timings`` dict; the instrumented code adds stages to it with
``stage()``:

- ``auth`` and ``throttle``: ``TimedApiView`` (DRF authentication, the plan
  throttle and meter);
- ``history`` and ``engine`` (or ``cache``, a result-cache hit): the served
  list's own ``meta.timings_ms``;
- ``render``: building and encoding the response body.

On the way out the middleware adds ``total`` (its own wall time around the
whole chain) and writes the header when the request recorded any stage and
``APEX_SERVER_TIMING`` allows it: ``staff`` (the default: staff callers only,
since timings tell an outsider about the system), ``all`` (every caller: the
benchmarks read it) or ``off`` (no header, no bookkeeping). A request
without stages (pages, other endpoints) gets no header, and the middleware
never touches ``request.user`` for it, so it never loads a session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.views import APIView

HEADER = "Server-Timing"


def stage(request: Any, name: str, ms: float) -> None:
    """Add ``ms`` to stage ``name`` of ``request`` (a Django or DRF request)."""
    timings = getattr(getattr(request, "_request", request), "apex_timings", None)
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + ms


def header_value(timings: dict[str, float]) -> str:
    return ", ".join(f"{name};dur={ms:.3f}" for name, ms in timings.items())


class ServerTimingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.mode = settings.APEX_SERVER_TIMING

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.mode == "off":
            return self.get_response(request)
        started = time.perf_counter()
        timings: dict[str, float] = {}
        request.apex_timings = timings  # type: ignore[attr-defined]
        response = self.get_response(request)
        if timings and (self.mode == "all" or _is_staff(request)):
            timings["total"] = 1e3 * (time.perf_counter() - started)
            response[HEADER] = header_value(timings)
        return response


def _is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)  # set by DRF's authentication
    return bool(user is not None and user.is_authenticated and user.is_staff)


class TimedApiView(APIView):
    """An ``APIView`` whose authentication and throttling are timed."""

    def perform_authentication(self, request) -> None:
        started = time.perf_counter()
        super().perform_authentication(request)
        stage(request, "auth", 1e3 * (time.perf_counter() - started))

    def check_throttles(self, request) -> None:
        started = time.perf_counter()
        try:
            super().check_throttles(request)
        finally:
            stage(request, "throttle", 1e3 * (time.perf_counter() - started))
