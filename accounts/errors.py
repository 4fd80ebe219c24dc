"""The accounts app's error codes (``ApplicationError.code``; shared ones are
``apex_site.errors.ErrorCode``)."""

from enum import StrEnum


class AccountsErrorCode(StrEnum):
    EMAIL_TAKEN = "email_taken"
