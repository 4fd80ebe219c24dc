"""Logging: one console handler, level from ``APEX_LOG_LEVEL``.

Celery workers use this too (``apex_site/celery.py`` hooks ``setup_logging``).
"""

from __future__ import annotations

from ..environment import env_choice

__all__ = ["LOGGING", "LOG_LEVEL"]

LOG_LEVEL = env_choice(
    "APEX_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
    },
}
