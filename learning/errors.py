"""The learning app's error codes (``ApplicationError.code``; shared ones are
``apex_site.errors.ErrorCode``)."""

from enum import StrEnum


class LearningErrorCode(StrEnum):
    INVALID_RATING = "invalid_rating"
    BATCH_TOO_LARGE = "batch_too_large"
