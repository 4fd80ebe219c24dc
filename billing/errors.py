"""The billing app's error codes (``ApplicationError.code``; shared ones are
``apex_site.errors.ErrorCode``). ``quota_exceeded`` is the throttle's
(``apex_site.throttling.QUOTA_EXCEEDED``)."""

from enum import StrEnum


class BillingErrorCode(StrEnum):
    NOT_CONFIGURED = "billing_not_configured"
    UNKNOWN_PLAN = "unknown_plan"
    PLAN_NOT_PURCHASABLE = "plan_not_purchasable"
    ALREADY_SUBSCRIBED = "already_subscribed"
    NO_CUSTOMER = "no_billing_customer"
    STRIPE_ERROR = "stripe_error"
