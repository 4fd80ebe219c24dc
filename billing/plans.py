"""The plans, defined once: quotas, rates, prices and what each unlocks.

A quota counts *metered* calls (``APEX_METERED_PATHS``: recommendations,
search, events) per calendar month (UTC). Free stops at its quota. Pro keeps
answering past its quota up to ``hard_limit``; every Pro call is reported to
Stripe as a meter event and the metered price's first tier (the quota) is
free, so only the overage is billed. Business stops at its quota.

Stripe objects are found by the lookup keys below (``billing_sync_plans``
creates or updates them); the Free plan needs no Stripe at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PlanKey(StrEnum):
    FREE = "free"
    PRO = "pro"
    BUSINESS = "business"


@dataclass(frozen=True)
class Plan:
    key: PlanKey
    name: str
    description: str
    monthly_quota: int
    """Metered calls a month included in the price."""
    hard_limit: int
    """Metered calls a month after which the API answers 429."""
    rate_per_second: int
    """Metered calls a second."""
    price_cents: int
    """The monthly price in USD cents; 0 for Free."""
    overage_cents_per_1000: int | None = None
    """Billed per 1,000 calls over the quota (metered plans only)."""
    analytics_api: bool = False

    @property
    def metered(self) -> bool:
        return self.overage_cents_per_1000 is not None

    @property
    def paid(self) -> bool:
        return self.price_cents > 0

    @property
    def product_id(self) -> str:
        return f"apex_{self.key}"

    @property
    def price_lookup_key(self) -> str:
        return f"apex_{self.key}_monthly"

    @property
    def metered_lookup_key(self) -> str:
        return f"apex_{self.key}_calls"


FREE = Plan(
    key=PlanKey.FREE,
    name="Free",
    description="Try the API: 1,000 calls a month.",
    monthly_quota=1_000,
    hard_limit=1_000,
    rate_per_second=10,
    price_cents=0,
)
PRO = Plan(
    key=PlanKey.PRO,
    name="Pro",
    description="100,000 calls a month, then $0.50 per 1,000.",
    monthly_quota=100_000,
    hard_limit=1_000_000,
    rate_per_second=50,
    price_cents=2_900,
    overage_cents_per_1000=50,
)
BUSINESS = Plan(
    key=PlanKey.BUSINESS,
    name="Business",
    description="2,000,000 calls a month and the analytics API.",
    monthly_quota=2_000_000,
    hard_limit=2_000_000,
    rate_per_second=200,
    price_cents=49_900,
    analytics_api=True,
)

PLANS: dict[PlanKey, Plan] = {plan.key: plan for plan in (FREE, PRO, BUSINESS)}


def plan_get(key: str) -> Plan:
    """The plan named ``key``; an unknown key (a plan since removed) is Free."""
    try:
        return PLANS[PlanKey(key)]
    except ValueError:
        return FREE
