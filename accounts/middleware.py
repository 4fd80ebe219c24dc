"""Request hardening Django has no setting for: a body-size gate that answers
413 before anything reads the body, and the Permissions-Policy header."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse, JsonResponse

from accounts.errors import AccountsErrorCode
from apex_site.errors import error_body


class RequestSizeLimitMiddleware:
    """413 for a body declared larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE``.

    Django checks that limit only when ``request.body`` / ``request.POST`` is
    read (and answers a bare 400); DRF's parsers read the stream directly and
    never check it. This gate reads ``Content-Length`` first, so an oversized
    JSON body is refused with the API's error shape (code
    ``request_too_large``) without being read. A chunked body has no length:
    nginx's ``client_max_body_size`` (the same 1 MiB) bounds it in the
    production shape.
    """

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            message = f"The request body is {length:,} bytes; the limit is {limit:,}."
            if request.path.startswith("/v1/"):
                return JsonResponse(
                    error_body(
                        AccountsErrorCode.REQUEST_TOO_LARGE,
                        message,
                        {"limit_bytes": limit},
                    ),
                    status=413,
                )
            return HttpResponse(message, status=413, content_type="text/plain")
        return self.get_response(request)


class PermissionsPolicyMiddleware:
    """``Permissions-Policy: settings.PERMISSIONS_POLICY`` on every answer
    (the browser features no APEX page uses are switched off)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = getattr(settings, "PERMISSIONS_POLICY", "")
        if policy:
            response.headers.setdefault("Permissions-Policy", policy)
        return response
