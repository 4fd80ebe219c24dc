"""Stripe and dj-stripe.

Without ``STRIPE_SECRET_KEY`` billing runs in its embedded mode: plans and
usage work, everyone is on Free, Checkout and the Portal answer 503.
``STRIPE_API_HOST`` points stripe-python and dj-stripe at another API server
(the test suite's stripe-mock); it exists as a setting only when set, because
dj-stripe warns whenever the attribute is present.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from ..environment import env_bool, env_str

__all__ = [
    "DJSTRIPE_FOREIGN_KEY_TO_FIELD",
    "DJSTRIPE_SUBSCRIBER_CUSTOMER_KEY",
    "DJSTRIPE_WEBHOOK_VALIDATION",
    "STRIPE_API_VERSION",
    "STRIPE_LIVE_MODE",
    "STRIPE_PUBLIC_KEY",
    "STRIPE_SECRET_KEY",
]

STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
if STRIPE_SECRET_KEY and not STRIPE_SECRET_KEY.startswith(("sk_", "rk_")):
    raise ImproperlyConfigured(
        "Environment variable STRIPE_SECRET_KEY is malformed: expected a secret "
        "key starting sk_ or rk_."
    )
STRIPE_PUBLIC_KEY = env_str("STRIPE_PUBLIC_KEY")
STRIPE_LIVE_MODE = env_bool(
    "STRIPE_LIVE_MODE", STRIPE_SECRET_KEY.startswith(("sk_live_", "rk_live_"))
)
# The API version of every request (and of the webhook endpoint we create).
STRIPE_API_VERSION = env_str("STRIPE_API_VERSION", "2026-05-27.dahlia")
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
# dj-stripe links a Customer to a user through this metadata key.
DJSTRIPE_SUBSCRIBER_CUSTOMER_KEY = "djstripe_subscriber"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"

if env_str("STRIPE_API_HOST"):
    STRIPE_API_HOST = env_str("STRIPE_API_HOST").rstrip("/")
    __all__ += ["STRIPE_API_HOST"]
