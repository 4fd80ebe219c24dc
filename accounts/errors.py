"""The accounts app's error codes (``ApplicationError.code``; shared ones are
``apex_site.errors.ErrorCode``)."""

from enum import StrEnum


class AccountsErrorCode(StrEnum):
    EMAIL_TAKEN = "email_taken"
    # 429: too many failed logins for this email from this address (cool-off)
    LOGIN_LOCKED_OUT = "login_locked_out"
    # 401: the API key's expiry has passed
    API_KEY_EXPIRED = "api_key_expired"
    # 403: the API key lacks the scope the call needs (detail names it)
    API_KEY_SCOPE = "api_key_scope_missing"
    # 413: the body is over DATA_UPLOAD_MAX_MEMORY_SIZE (accounts.middleware)
    REQUEST_TOO_LARGE = "request_too_large"
