"""Production: PostgreSQL, Redis, HTTPS. Refuses to start half-configured."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .environment import env_bool, env_int, env_str
from .integrations.database import DATABASES
from .integrations.redis import REDIS_URL
from .integrations.security import CONTENT_SECURITY_POLICY

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "Environment variable DJANGO_SECRET_KEY is required in production."
    )
if "postgresql" not in DATABASES["default"]["ENGINE"]:
    raise ImproperlyConfigured(
        "Environment variable DATABASE_URL must point at PostgreSQL in production."
    )
if not REDIS_URL:
    raise ImproperlyConfigured(
        "Environment variable REDIS_URL is required in production."
    )

DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env_int(
    "DJANGO_SECURE_HSTS_SECONDS", 60 * 60 * 24 * 30, minimum=0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True

# Behind the bundled nginx: the client address is the last X-Forwarded-For
# entry (the throttles and the login lock-out key on it). 0 without a proxy.
APEX_TRUSTED_PROXY_COUNT = env_int("APEX_TRUSTED_PROXY_COUNT", 1, minimum=0)
REST_FRAMEWORK = {**REST_FRAMEWORK, "NUM_PROXIES": APEX_TRUSTED_PROXY_COUNT}  # noqa: F405
# HTTPS only: a page's http:// sub-resources are fetched over https.
if CONTENT_SECURITY_POLICY is not None:
    CONTENT_SECURITY_POLICY = {
        "DIRECTIVES": {
            **CONTENT_SECURITY_POLICY["DIRECTIVES"],
            "upgrade-insecure-requests": True,
        }
    }
