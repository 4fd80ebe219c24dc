"""Tests: PostgreSQL and Redis started by ``scripts/run_tests.py`` (``make test``).

Tasks run in-process by default so unit tests stay deterministic; integration
tests switch to the real worker explicitly.
"""

from .base import *  # noqa: F403
from .environment import env_bool, env_int

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = env_bool("APEX_CELERY_EAGER", True)
# The online KAN learner trains in-process under eager Celery: only the tests
# about it turn it on (they call recommendations.online directly).
APEX_ONLINE_LEARNING = env_bool("APEX_ONLINE_LEARNING", False)
# Factories write interactions without the writer, which drops cached
# histories: only the tests about the cache turn it on.
APEX_HISTORY_CACHE_SECONDS = env_int("APEX_HISTORY_CACHE_SECONDS", 0, minimum=0)
# A sampled list skips the result cache: tests choose it (0 or 1) explicitly.
APEX_IMPRESSIONS_CANDIDATES_SHARE = 0.0
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
REST_FRAMEWORK = {**REST_FRAMEWORK}  # noqa: F405
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"anon": "10000/min", "user": "10000/min"}
# The auth endpoints' per-address throttles (every test client is 127.0.0.1);
# the tests about them lower these.
APEX_THROTTLE_AUTH = "10000/min"
APEX_THROTTLE_SIGNUP = "10000/min"
