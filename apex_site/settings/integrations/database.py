"""The database: PostgreSQL from ``DATABASE_URL``, else a SQLite file."""

from __future__ import annotations

from ..environment import env_bool, env_database, env_float, env_int
from ..paths import DATA_DIR

__all__ = ["DATABASES"]

DATABASES = {
    "default": env_database("DATABASE_URL")
    or {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "apex.sqlite3",
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
    }
}
if "postgresql" in DATABASES["default"]["ENGINE"] and env_bool("APEX_DB_POOL", True):
    # Under ASGI every request runs its sync code in a fresh thread, so Django's
    # thread-local persistent connections are never reused: without a pool each
    # request opens a new PostgreSQL connection (~5-10 ms). psycopg's pool fixes
    # that (Django >= 5.1); it needs CONN_MAX_AGE = 0 and checks connections itself.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("APEX_DB_POOL_MIN", 2, minimum=0),
        "max_size": env_int("APEX_DB_POOL_MAX", 20, minimum=1),
        # how long a request waits for a connection: while PostgreSQL is down
        # a request answers 503 (Retry-After) after this, instead of holding a
        # web thread until the client gives up (issue 18's fault runs)
        "timeout": env_float("APEX_DB_POOL_TIMEOUT", 3.0, minimum=0.1),
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DJANGO_CONN_MAX_AGE", 60, minimum=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if "postgresql" in DATABASES["default"]["ENGINE"]:
    # Parameters travel apart from the SQL, and a statement a connection runs
    # 5 times is prepared (psycopg's prepare_threshold): PostgreSQL skips the
    # parse and plan, the client the quoting (POST /v1/events 1.73 -> 1.67 ms
    # of web CPU, the coordinator 0.52 -> 0.48 ms per event; issue 13). Off for
    # a transaction-mode connection pooler (pgbouncer) in front of PostgreSQL.
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = env_bool(
        "APEX_DB_SERVER_SIDE_BINDING", True
    )
