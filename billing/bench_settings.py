"""Settings for ``python -m billing.bench``: the product's settings, with the
plan limits widened by ``billing.bench.bench_limits`` (quota from
``APEX_BENCH_QUOTA``, no per-second rate) so the numbers measure the quota and
the meter, not the rate."""

from apex_site.settings.base import *  # noqa: F403
from apex_site.settings.base import APEX_BILLING_METERING

if APEX_BILLING_METERING:
    APEX_PLAN_RATE_RESOLVER = "billing.bench.bench_limits"
