"""The analytics app's error codes (``ApplicationError.code``; shared ones are
``apex_site.errors.ErrorCode``)."""

from enum import StrEnum


class AnalyticsErrorCode(StrEnum):
    PRIVACY_BUDGET_EXHAUSTED = "privacy_budget_exhausted"
    NOT_ENTITLED = "analytics_not_entitled"
    NO_ACTIVE_ARTIFACT = "no_active_artifact"
    AUDIT_DATA_MISMATCH = "audit_data_mismatch"
    NO_OFFLINE_METRICS = "no_offline_metrics"
    NO_SERVED_SLATES = "no_served_slates"
