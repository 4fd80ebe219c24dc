"""Failed-login lock-out (django-axes) and the throttles of the auth endpoints.

Axes counts failed logins per (email, client address) pair and refuses the
pair for ``AXES_COOLOFF_TIME`` after ``AXES_FAILURE_LIMIT`` failures
(``apex_site/settings/integrations/security.py``). Every login path goes
through ``django.contrib.auth.authenticate`` with the request — the login
page, the admin's login, ``POST /v1/auth/token`` — so one backend guards all
of them. The answers: the page (and the admin) get 429 and a page that says
when to try again (``lockout_response``); the API gets 429 with the code
``login_locked_out`` (``accounts.api.views``).
"""

from __future__ import annotations

import math
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from accounts.errors import AccountsErrorCode
from apex_site.errors import error_body


class LoginLockoutBackend(AxesStandaloneBackend):
    """Axes' backend, tolerant of a call without a request.

    ``authenticate()`` without a request comes from no HTTP path (every view
    passes its request); it has no client address to key a lock-out on, so
    this backend stands aside (returns None) and the next backend decides,
    where axes' own backend would raise ``ValueError`` — which would break
    Django's test ``Client.login`` and management commands.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def login_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The email the attempt was for, lower-cased (the key's first half).

    The login form posts it as ``username`` (Django's AuthenticationForm), the
    token API as ``email``; case variants of one address count together.
    """
    credentials = credentials or {}
    value = credentials.get("email") or credentials.get("username")
    if value is None:
        data = getattr(request, "data", None) or request.POST
        value = data.get("email") or data.get("username") or ""
    return str(value).strip().lower()


def client_ip(request: HttpRequest) -> str | None:
    """The client address: DRF's reading of it (``NUM_PROXIES`` =
    ``APEX_TRUSTED_PROXY_COUNT``), so the lock-out and the throttles agree."""
    return BaseThrottle().get_ident(request)


def cool_off_seconds() -> int:
    cool_off = get_cool_off()
    return int(cool_off.total_seconds()) if cool_off else 0


def lockout_message() -> str:
    minutes = math.ceil(cool_off_seconds() / 60)
    return (
        f"Too many failed logins for this account from your address. Try again "
        f"in {minutes} minutes."
    )


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """Axes' answer to a locked-out attempt on a page (the API answers in its
    view, where DRF's request carries axes' flag)."""
    seconds = cool_off_seconds()
    if request.path.startswith("/v1/"):
        from django.http import JsonResponse

        response: HttpResponse = JsonResponse(
            error_body(
                AccountsErrorCode.LOGIN_LOCKED_OUT,
                lockout_message(),
                {"retry_after_seconds": seconds},
            ),
            status=429,
        )
    else:
        response = render(
            request,
            "accounts/locked_out.html",
            {"message": lockout_message(), "retry_after_seconds": seconds},
            status=429,
        )
    response["Retry-After"] = str(seconds)
    return response


class _SettingRateThrottle(SimpleRateThrottle):
    """A per-client-address throttle whose rate is a plain setting (so the
    test settings' replacement of ``DEFAULT_THROTTLE_RATES`` leaves it)."""

    setting = ""

    def get_rate(self) -> str:
        return str(getattr(settings, self.setting))

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {
            "scope": self.scope,
            "ident": self.get_ident(request),
        }


class AuthRateThrottle(_SettingRateThrottle):
    """Login page, token obtain and refresh: ``APEX_THROTTLE_AUTH``."""

    scope = "auth"
    setting = "APEX_THROTTLE_AUTH"


class SignupRateThrottle(_SettingRateThrottle):
    """Sign-up page and ``POST /v1/auth/register``: ``APEX_THROTTLE_SIGNUP``."""

    scope = "signup"
    setting = "APEX_THROTTLE_SIGNUP"


def page_throttled(
    request: HttpRequest, throttle_class: type[_SettingRateThrottle]
) -> HttpResponse | None:
    """For a page's POST: None when allowed, else the 429 page."""
    if request.method != "POST":
        return None
    throttle = throttle_class()
    if throttle.allow_request(request, None):
        return None
    seconds = math.ceil(throttle.wait() or 1)
    response = render(
        request,
        "accounts/locked_out.html",
        {
            "message": f"Too many attempts from your address. Try again in "
            f"{seconds} seconds.",
            "retry_after_seconds": seconds,
        },
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response
