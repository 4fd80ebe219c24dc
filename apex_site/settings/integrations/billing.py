"""Billing: plan quotas on the metered API, the usage roll-up, meter reporting.

The plans themselves (quotas, rates, prices) are code: ``billing/plans.py``.
"""

from __future__ import annotations

from ..environment import env_bool, env_int, env_list
from .celery import CELERY_BEAT_SCHEDULE

__all__ = [
    "APEX_BILLING_ENTITLEMENTS_CACHE_SECONDS",
    "APEX_BILLING_METERING",
    "APEX_BILLING_METER_EVENT_NAME",
    "APEX_BILLING_PAST_DUE_GRACE_DAYS",
    "APEX_BILLING_REPORT_SECONDS",
    "APEX_BILLING_ROLLUP_SECONDS",
    "APEX_METERED_PATHS",
    "APEX_PLAN_RATE_RESOLVER",
]

# Off: the API is throttled by APEX_THROTTLE_ANON/USER only, nothing is counted.
APEX_BILLING_METERING = env_bool("APEX_BILLING_METERING", True)
# ``apex_site.throttling.PlanRateThrottle`` asks this for each request's limits.
APEX_PLAN_RATE_RESOLVER = (
    "billing.selectors.request_limits"
    if APEX_BILLING_METERING
    else "apex_site.throttling.default_rate"
)
# Path prefixes whose calls count against the monthly quota.
APEX_METERED_PATHS = tuple(
    env_list("APEX_METERED_PATHS", ["/v1/recommendations/", "/v1/search", "/v1/events"])
)
# A serving process keeps a user's plan limits at most this long. A change of
# plan reaches every process sooner, at its next metered call (the meter
# carries a generation the change bumps); this bounds what changes with time
# alone (the end of a past-due grace) and a change whose bump found Redis down.
APEX_BILLING_ENTITLEMENTS_CACHE_SECONDS = env_int(
    "APEX_BILLING_ENTITLEMENTS_CACHE_SECONDS", 300, minimum=0
)
# past_due keeps the paid plan this many days after the first failed payment.
APEX_BILLING_PAST_DUE_GRACE_DAYS = env_int(
    "APEX_BILLING_PAST_DUE_GRACE_DAYS", 7, minimum=0
)
APEX_BILLING_METER_EVENT_NAME = "apex_api_calls"
APEX_BILLING_ROLLUP_SECONDS = env_int("APEX_BILLING_ROLLUP_SECONDS", 300, minimum=10)
APEX_BILLING_REPORT_SECONDS = env_int("APEX_BILLING_REPORT_SECONDS", 900, minimum=10)

# Added to the one beat schedule (the dict lives in .celery).
CELERY_BEAT_SCHEDULE["billing-usage-rollup"] = {
    "task": "billing.usage_rollup",
    "schedule": APEX_BILLING_ROLLUP_SECONDS,
    "options": {"queue": "default", "expires": APEX_BILLING_ROLLUP_SECONDS},
}
CELERY_BEAT_SCHEDULE["billing-meter-report"] = {
    "task": "billing.meter_report",
    "schedule": APEX_BILLING_REPORT_SECONDS,
    "options": {"queue": "default", "expires": APEX_BILLING_REPORT_SECONDS},
}
