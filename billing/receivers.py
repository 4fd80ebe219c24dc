"""dj-stripe webhook handlers: each hands the signed event's object to a
service. dj-stripe has verified the signature (300 s tolerance) and stored
the ``Event``; a replay of a stored event never reaches these handlers, and
the services are idempotent on their own as well. The handlers run inside
dj-stripe's transaction: side effects wait for its commit."""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver
from djstripe.event_handlers import djstripe_receiver

from billing import selectors, services
from billing.plans import FREE


def _object(event) -> dict:
    return (event.data or {}).get("object") or {}


@djstripe_receiver("checkout.session.completed")
def on_checkout_completed(sender, event, **kwargs) -> None:
    services.checkout_completed(event_id=event.id, session=_object(event))


@djstripe_receiver(
    [
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ]
)
def on_subscription_event(sender, event, **kwargs) -> None:
    services.subscription_apply(
        event_id=event.id, event_created=event.created, subscription=_object(event)
    )


@djstripe_receiver("invoice.paid")
def on_invoice_paid(sender, event, **kwargs) -> None:
    services.invoice_record(event_id=event.id, invoice=_object(event), failed=False)


@djstripe_receiver("invoice.payment_failed")
def on_invoice_payment_failed(sender, event, **kwargs) -> None:
    services.invoice_record(event_id=event.id, invoice=_object(event), failed=True)


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def on_user_created(sender, instance, created, **kwargs) -> None:
    """A new user is on Free: remember that in this process, so their first
    metered call costs no query."""
    if created:
        selectors.limits_remember(
            user_id=instance.pk, limits=selectors.limits_for(FREE, user_id=instance.pk)
        )
