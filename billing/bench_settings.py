"""Settings for ``benchmarks/billing_bench.py`` (and the quota end-to-end
test): the product's settings, with the plan limits widened by
``bench_limits`` below (quota from
``APEX_BENCH_QUOTA``, no per-second rate) so the numbers measure the quota and
the meter, not the rate."""

import dataclasses
import os

from apex_site.settings.base import *  # noqa: F403
from apex_site.settings.base import APEX_BILLING_METERING

if APEX_BILLING_METERING:
    APEX_PLAN_RATE_RESOLVER = "billing.bench_settings.bench_limits"


def bench_limits(request):
    """The real resolver, without the per-second rate; the racing user
    (``APEX_BENCH_RACER``) gets a quota of ``APEX_BENCH_QUOTA``."""
    from apex_site import throttling
    from billing.selectors import request_limits

    limits = request_limits(request)
    if not isinstance(limits, throttling.Limits):
        return limits
    racer = str(limits.user_id) == os.environ.get("APEX_BENCH_RACER")
    quota = int(os.environ["APEX_BENCH_QUOTA"]) if racer else 10**9
    return dataclasses.replace(
        limits, rate_per_second=10**9, monthly_quota=quota, hard_limit=quota
    )
