"""The catalog app's error codes (``ApplicationError.code``; shared ones are
``apex_site.errors.ErrorCode``)."""

from enum import StrEnum


class CatalogErrorCode(StrEnum):
    # data files (loaders)
    MALFORMED_FILE = "malformed_file"
    MALFORMED_ROW = "malformed_row"
    EMPTY_RELEASE = "empty_release"
    WRONG_LAYOUT = "wrong_layout"
    FILE_UNREADABLE = "file_unreadable"
    # the TMDB API
    TMDB_NO_KEY = "tmdb_no_key"
    TMDB_UNAUTHORIZED = "tmdb_unauthorized"
    TMDB_ERROR = "tmdb_error"
    TMDB_UNAVAILABLE = "tmdb_unavailable"
