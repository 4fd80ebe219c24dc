"""API throttling with a hook for plan quotas.

``PlanRateThrottle`` asks ``settings.APEX_PLAN_RATE_RESOLVER`` (a dotted path
to ``f(request) -> "N/period" | None``) for the caller's rate. Until billing
provides per-plan quotas, the resolver below returns the anon/user defaults.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string
from rest_framework.throttling import SimpleRateThrottle


def default_rate(request) -> str | None:
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    user = getattr(request, "user", None)
    return rates["user"] if user and user.is_authenticated else rates["anon"]


class PlanRateThrottle(SimpleRateThrottle):
    scope = "plan"

    def __init__(self) -> None:  # rates are resolved per request, not per class
        pass

    def allow_request(self, request, view) -> bool:
        resolver = import_string(
            getattr(
                settings, "APEX_PLAN_RATE_RESOLVER", "apex_site.throttling.default_rate"
            )
        )
        self.rate = resolver(request)
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view) -> str:
        if request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"anon:{self.get_ident(request)}"
        return f"throttle:plan:{ident}"
