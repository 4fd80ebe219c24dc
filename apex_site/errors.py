"""The application error type and the one error shape of the API.

Every API failure renders as ``{"code": ..., "message": ..., "detail": ...}``
with the matching HTTP status, whether it came from DRF, Django or our code.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ErrorCode(StrEnum):
    """Codes every app uses. An app's own codes are its ``<App>ErrorCode``
    (``<app>/errors.py``); together they are every ``code`` the API returns
    besides DRF's own (``throttled``, ``not_authenticated``, ...)."""

    INVALID = "invalid"
    PARSE_ERROR = "parse_error"
    NOT_FOUND = "not_found"
    SERVER_ERROR = "server_error"
    UNAVAILABLE = "unavailable"


class ApplicationError(Exception):
    """A failure the caller can act on, with a stable machine-readable code."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(
        self,
        message: str,
        *,
        code: str = ErrorCode.INVALID,
        detail: Any = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = str(code)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "detail": detail}


def _first_code(codes: Any) -> str:
    if isinstance(codes, str):
        return codes
    if isinstance(codes, dict):
        code = codes.get("code")
        return code if isinstance(code, str) else ErrorCode.INVALID
    if isinstance(codes, list) and codes:
        return _first_code(codes[0])
    return "error"


_MESSAGES = {
    ErrorCode.INVALID: "The request is invalid.",
    ErrorCode.PARSE_ERROR: "The request body could not be parsed.",
}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(
            error_body(exc.code, exc.message, exc.detail), status=exc.status_code
        )
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, (OperationalError, InterfaceError)):
        # the database is unreachable (restarting, failing over): a retry is
        # the answer, and the idempotency key tells a stored event from a lost one
        logger.warning("database unavailable", extra={"error": type(exc).__name__})
        return Response(
            error_body(ErrorCode.UNAVAILABLE, "The database is unavailable; retry."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "1"},
        )

    from rest_framework.views import exception_handler  # DRF settings import us

    response = exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django's 500 handling and logging take over
    assert isinstance(exc, exceptions.APIException)
    code = _first_code(exc.get_codes())
    if isinstance(exc, exceptions.ValidationError):
        message = _MESSAGES[ErrorCode.INVALID]
        detail = exc.detail
    else:
        if isinstance(exc.detail, dict) and "detail" in exc.detail:  # simplejwt
            message = exc.detail["detail"]
        elif isinstance(exc.detail, (dict, list)):
            message = _MESSAGES.get(code, exc.default_detail)
        else:
            message = exc.detail
        detail = None if isinstance(exc.detail, str) else exc.detail
    response.data = error_body(code, str(message), detail)
    return response


def _wants_json(request) -> bool:
    return request.path.startswith("/v1/")


def handler404(request, exception=None):
    if _wants_json(request):
        return JsonResponse(
            error_body(
                ErrorCode.NOT_FOUND, "No such resource.", {"path": request.path}
            ),
            status=404,
        )
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if _wants_json(request):
        return JsonResponse(
            error_body(ErrorCode.SERVER_ERROR, "Internal server error."), status=500
        )
    from django.views.defaults import server_error

    return server_error(request)


class ErrorSerializer(serializers.Serializer):
    """The error shape every API response uses (for the OpenAPI schema)."""

    code = serializers.CharField()
    message = serializers.CharField()
    detail = serializers.JSONField(allow_null=True)
