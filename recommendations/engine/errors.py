"""Engine error types.

Every error the engine raises on purpose derives from :class:`EngineError`, so the
recommendation service can catch one type and serve a fallback list.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import ClassVar


class EngineErrorCode(StrEnum):
    """The stable ``code`` of each engine error (what callers may match on)."""

    ENGINE_ERROR = "engine_error"
    DATA_ERROR = "data_error"
    MALFORMED_ROW = "malformed_row"
    MALFORMED_FILE = "malformed_file"
    WRONG_LAYOUT = "wrong_layout"
    EMPTY_RELEASE = "empty_release"
    DATASET_UNAVAILABLE = "dataset_unavailable"
    UNKNOWN_ITEM = "unknown_item"
    UNKNOWN_USER = "unknown_user"
    NOT_FITTED = "not_fitted"
    CONFIG_ERROR = "config_error"
    BUNDLE_LOAD_ERROR = "bundle_load_error"


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""

    code: ClassVar[EngineErrorCode] = EngineErrorCode.ENGINE_ERROR


class DataError(EngineError):
    """Input data is missing, unreadable or inconsistent."""

    code = EngineErrorCode.DATA_ERROR


class MalformedRowError(DataError):
    """A row of an input file cannot be parsed.

    Carries the file and the 1-based line number so the operator can fix it.
    """

    code = EngineErrorCode.MALFORMED_ROW

    def __init__(self, path: str | Path, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{self.path}, line {line}: {reason}")


class DatasetUnavailableError(DataError):
    """No configured source could provide the requested data set."""

    code = EngineErrorCode.DATASET_UNAVAILABLE


class UnknownItemError(EngineError, KeyError):
    """An item id (external or dense index) is not in the model's vocabulary."""

    code = EngineErrorCode.UNKNOWN_ITEM

    def __init__(self, item: object, n_items: int | None = None) -> None:
        self.item = item
        detail = f" (vocabulary has {n_items} items)" if n_items is not None else ""
        super().__init__(f"unknown item id {item!r}{detail}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class UnknownUserError(EngineError, KeyError):
    """A user id is not in the vocabulary."""

    code = EngineErrorCode.UNKNOWN_USER

    def __init__(self, user: object) -> None:
        self.user = user
        super().__init__(f"unknown user id {user!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class NotFittedError(EngineError):
    """A model was asked to score before `fit` or `load`."""

    code = EngineErrorCode.NOT_FITTED


class ConfigError(EngineError, ValueError):
    """An engine setting (model name, profile, protocol) is not valid."""

    code = EngineErrorCode.CONFIG_ERROR
