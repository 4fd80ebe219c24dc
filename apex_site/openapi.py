"""The OpenAPI schema's contract for errors and pages (issue 18).

Every ``/v1`` operation documents the errors the framework can answer for it
with the one error envelope (``apex_site.errors.ErrorSerializer``), derived
from the view itself, so a generated client never meets an undocumented
status:

- 400 ``invalid`` / ``parse_error``: the operation reads query parameters or
  a request body;
- 401 ``not_authenticated`` / ``authentication_failed``: the view
  authenticates (a bad credential is refused even where anonymous callers
  are welcome), or it is one of simplejwt's token views (a refused password
  or token);
- 403 ``permission_denied``: the view authenticates (an API key without the
  scope the path needs, a session's missing CSRF token, a permission);
- 404 ``not_found``: the path has a parameter, or the operation pages;
- 429 ``throttled`` / ``quota_exceeded``: the view throttles.

An operation's own description of a status (``extend_schema(responses=...)``)
wins over these. A request's required string that DRF strips before its
blank check carries the pattern ``\\S`` (at least one non-space), as the view
judges it. ``paginated`` and ``PAGE_PARAMETERS`` document a
``StandardPagination`` page.
"""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework_simplejwt.views import TokenViewBase

from apex_site.errors import ErrorSerializer
from apex_site.pagination import StandardPagination

ERROR_RESPONSES: dict[int, OpenApiResponse] = {
    400: OpenApiResponse(
        ErrorSerializer,
        description="`invalid`: a parameter or field is wrong (`detail` names "
        "it); `parse_error`: the body is not JSON",
    ),
    401: OpenApiResponse(
        ErrorSerializer,
        description="`not_authenticated`: credentials needed; "
        "`authentication_failed`, `token_not_valid`, `no_active_account` (or a "
        "more specific code): they were refused",
    ),
    403: OpenApiResponse(
        ErrorSerializer,
        description="`permission_denied`: not allowed for this caller (another "
        "user's data, staff only, a session without its CSRF token); "
        "`api_key_scope`: the API key lacks the scope the path needs",
    ),
    404: OpenApiResponse(ErrorSerializer, description="`not_found`"),
    429: OpenApiResponse(
        ErrorSerializer,
        description="`throttled`: over the rate (`Retry-After` says when to "
        "retry); `quota_exceeded`: the plan's monthly quota is used up",
    ),
}


class ApexAutoSchema(AutoSchema):
    """drf-spectacular's schema with the error responses every operation can
    give (see the module docstring)."""

    def _get_response_bodies(self, direction: Any = "response") -> dict:
        # Not ``get_response_serializers``: ``extend_schema(responses=...)``
        # replaces that one in a subclass.
        responses = super()._get_response_bodies(direction)
        for status in self._error_statuses():
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(
                    ERROR_RESPONSES[status], str(status), direction=direction
                )
        return responses

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # DRF strips a CharField's whitespace before its blank check: "  " is
        # refused like "". Say so, so a schema-valid string is a valid one.
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and field.trim_whitespace
            and not field.allow_blank
            and schema.get("type") == "string"
            and not {"pattern", "format", "enum"} & schema.keys()
            and not any(isinstance(v, RegexValidator) for v in field.validators)
        ):
            schema["pattern"] = r"\S"
        return schema

    def _error_statuses(self) -> list[int]:
        view = self.view
        statuses = []
        reads_input = bool(self.get_override_parameters()) or (
            self.method in ("POST", "PUT", "PATCH")
            and self.get_request_serializer() is not None
        )
        if reads_input:
            statuses.append(400)
        if view.get_authenticators():
            statuses += [401, 403]
        elif isinstance(view, TokenViewBase):
            statuses.append(401)  # a refused password or token
        elif not all(isinstance(p, AllowAny) for p in view.get_permissions()):
            statuses.append(403)
        if "{" in self.path or self._pages():
            statuses.append(404)
        if view.get_throttles():
            statuses.append(429)
        return statuses

    def _pages(self) -> bool:
        return any(
            isinstance(p, OpenApiParameter) and p.name == "page"
            for p in self.get_override_parameters()
        )


PAGE_PARAMETERS = [
    OpenApiParameter(
        "page",
        {"type": "integer", "minimum": 1},
        description="Page number from 1 (past the last page: 404)",
    ),
    OpenApiParameter(
        "page_size",
        {"type": "integer", "minimum": 1, "maximum": StandardPagination.max_page_size},
        description=f"Rows per page, 1-{StandardPagination.max_page_size} (default 20)",
    ),
]
"""The query parameters of a ``StandardPagination`` page."""


def paginated(name: str, item: serializers.Serializer) -> serializers.Serializer:
    """The schema of a ``StandardPagination`` page of ``item`` rows."""
    return inline_serializer(
        name,
        {
            "count": serializers.IntegerField(help_text="Rows on all pages"),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item,
        },
    )
