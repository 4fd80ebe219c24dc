"""The one place that builds Stripe clients.

Our own calls (Checkout, Portal, meter events, plan sync) use a
``StripeClient``; it ignores ``stripe.api_base``, so ``STRIPE_API_HOST`` (the
tests' stripe-mock) is passed as its ``base_addresses``. dj-stripe's own calls
go through stripe-python's module-level API, which dj-stripe points at the
same host when the setting exists.
"""

from __future__ import annotations

import stripe
from django.conf import settings

from apex_site.errors import ApplicationError
from billing.errors import BillingErrorCode

NOT_CONFIGURED = "Billing is not configured on this server (no Stripe keys)."


def stripe_client() -> stripe.StripeClient:
    if not settings.STRIPE_SECRET_KEY:
        raise ApplicationError(
            NOT_CONFIGURED, code=BillingErrorCode.NOT_CONFIGURED, status_code=503
        )
    host = getattr(settings, "STRIPE_API_HOST", None)
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        stripe_version=settings.STRIPE_API_VERSION,
        base_addresses={"api": host} if host else None,
        # network errors are retried with the same idempotency key
        max_network_retries=2,
    )


def stripe_failure(error: stripe.StripeError) -> ApplicationError:
    """A Stripe error as the API's error shape (502: the upstream failed)."""
    return ApplicationError(
        "Stripe could not complete the request.",
        code=BillingErrorCode.STRIPE_ERROR,
        detail={"stripe_code": error.code, "stripe_message": error.user_message},
        status_code=502,
    )
