"""Middleware of the site itself."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class SyncChainMiddleware:
    """Keeps the whole middleware chain synchronous under ASGI.

    Django's built-in middleware are "async capable", which under ASGI means
    each of their ``process_request`` / ``process_response`` methods runs
    through ``sync_to_async``: about 30 thread switches per request through
    this project's 8 middleware (measured: ~30 % of the CPU of a tier-3
    recommendation request). A sync-only middleware at the innermost
    position makes Django build the chain in sync mode (one switch into a
    worker thread at the top, one around the view); every view of the site
    is synchronous anyway. Keep it last in ``MIDDLEWARE``.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)
