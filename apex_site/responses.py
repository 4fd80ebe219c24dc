"""Responses of the hot endpoints."""

from __future__ import annotations

import json

from django.http import HttpResponse


def json_response(body: dict) -> HttpResponse:
    """``body`` encoded as DRF's JSON renderer does (compact, UTF-8, no NaN),
    without its content negotiation: the hot endpoints answer JSON only, and
    their documented serializers stay the schema (issue 17)."""
    return HttpResponse(
        json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")),
        content_type="application/json",
    )
