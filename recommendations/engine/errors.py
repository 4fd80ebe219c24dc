"""Engine error types.

Every error the engine raises on purpose derives from :class:`EngineError`, so the
recommendation service can catch one type and serve a fallback list.
"""

from __future__ import annotations

from pathlib import Path


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""

    code = "engine_error"


class DataError(EngineError):
    """Input data is missing, unreadable or inconsistent."""

    code = "data_error"


class MalformedRowError(DataError):
    """A row of an input file cannot be parsed.

    Carries the file and the 1-based line number so the operator can fix it.
    """

    code = "malformed_row"

    def __init__(self, path: str | Path, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{self.path}, line {line}: {reason}")


class DatasetUnavailableError(DataError):
    """No configured source could provide the requested data set."""

    code = "dataset_unavailable"


class UnknownItemError(EngineError, KeyError):
    """An item id (external or dense index) is not in the model's vocabulary."""

    code = "unknown_item"

    def __init__(self, item: object, n_items: int | None = None) -> None:
        self.item = item
        detail = f" (vocabulary has {n_items} items)" if n_items is not None else ""
        super().__init__(f"unknown item id {item!r}{detail}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class UnknownUserError(EngineError, KeyError):
    """A user id is not in the vocabulary."""

    code = "unknown_user"

    def __init__(self, user: object) -> None:
        self.user = user
        super().__init__(f"unknown user id {user!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class NotFittedError(EngineError):
    """A model was asked to score before `fit` or `load`."""

    code = "not_fitted"


class ConfigError(EngineError, ValueError):
    """An engine setting (model name, profile, protocol) is not valid."""

    code = "config_error"
