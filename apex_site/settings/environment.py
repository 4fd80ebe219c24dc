"""Strict readers for environment variables.

django-environ parses URLs and lists; these wrappers make every malformed value
stop start-up with a message that names the variable, instead of silently
falling back (django-environ reads ``DJANGO_DEBUG=maybe`` as ``False``).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

import environ
from django.core.exceptions import ImproperlyConfigured

_env = environ.Env()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def _fail(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(
        f"Environment variable {name}={value!r} is malformed: expected {expected}."
    )


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _fail(name, value, "one of 1/0, true/false, yes/no, on/off")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise _fail(name, value, "an integer") from None
    if minimum is not None and number < minimum:
        raise _fail(name, value, f"an integer >= {minimum}")
    return number


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    below: float | None = None,
) -> float:
    """A float in ``[minimum, below)`` when the bounds are given."""
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise _fail(name, value, "a number") from None
    if (minimum is not None and number < minimum) or (
        below is not None and number >= below
    ):
        raise _fail(name, value, f"a number in [{minimum}, {below})")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _raw(name)
    if value is None or value == "":
        return default
    if value not in choices:
        raise _fail(name, value, "one of " + ", ".join(choices))
    return value


def env_database(name: str) -> dict[str, Any] | None:
    """A Django DATABASES entry from a URL, or None when the variable is unset."""
    value = _raw(name)
    if not value:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in {"postgres", "postgresql", "pgsql", "sqlite"}:
        raise _fail(
            name, value, "a postgres://user:pass@host:port/db or sqlite:/// URL"
        )
    if parsed.scheme != "sqlite" and not parsed.path.strip("/"):
        raise _fail(name, value, "a URL that names the database")
    try:
        return _env.db_url_config(value)
    except Exception as exc:  # django-environ raises several types
        raise _fail(name, value, f"a database URL ({exc})") from None


def env_redis_url(name: str) -> str | None:
    value = _raw(name)
    if not value:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in {"redis", "rediss"} or not parsed.hostname:
        raise _fail(name, value, "a redis://host:port/db URL")
    try:
        parsed.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _fail(
            name, value, "a redis://host:port/db URL with a numeric port"
        ) from None
    return value
