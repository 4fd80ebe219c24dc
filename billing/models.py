from __future__ import annotations

from django.conf import settings
from django.db import models

from billing.plans import PlanKey


class BillingAccount(models.Model):
    """What a user is entitled to, as the signed webhooks last said.

    No row means Free. Only ``billing.services`` write it: the webhook
    handlers and the admin's manual override.
    """

    class Status(models.TextChoices):
        NONE = "none", "no subscription"
        ACTIVE = "active"
        TRIALING = "trialing"
        PAST_DUE = "past_due", "past due"
        UNPAID = "unpaid"
        INCOMPLETE = "incomplete"
        INCOMPLETE_EXPIRED = "incomplete_expired", "incomplete (expired)"
        CANCELED = "canceled"
        PAUSED = "paused"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    plan = models.CharField(
        max_length=20, choices=[(k.value, k.value) for k in PlanKey], default="free"
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.NONE
    )
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    past_due_since = models.DateTimeField(null=True, blank=True)
    # the newest Stripe event applied (events can arrive out of order)
    last_event_id = models.CharField(max_length=255, blank=True)
    last_event_created = models.DateTimeField(null=True, blank=True)
    # the admin's manual override wins over the subscription while set
    override_plan = models.CharField(
        max_length=20,
        choices=[(k.value, k.value) for k in PlanKey],
        blank=True,
    )
    override_reason = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.plan} ({self.status})"


class PlanChange(models.Model):
    """The audit trail: every change of a user's plan or subscription state."""

    class Source(models.TextChoices):
        WEBHOOK = "webhook"
        ADMIN = "admin"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    stripe_event_id = models.CharField(max_length=255, blank=True)
    from_plan = models.CharField(max_length=20)
    to_plan = models.CharField(max_length=20)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.from_plan} → {self.to_plan} ({self.source})"


class Invoice(models.Model):
    """An invoice as its signed ``invoice.*`` events described it (the account
    page's list; dj-stripe keeps its own copy for the admin)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    stripe_invoice_id = models.CharField(max_length=255, unique=True)
    number = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=32)
    amount_due = models.PositiveIntegerField(default=0)
    amount_paid = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    hosted_invoice_url = models.URLField(max_length=2048, blank=True)
    created = models.DateTimeField()

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.number or self.stripe_invoice_id


class DailyUsage(models.Model):
    """Metered calls of one user on one UTC day, rolled up from Redis.

    ``calls`` is the counter's absolute value (a roll-up sets it, so running
    one twice is harmless); ``reported_calls`` is the watermark of what has
    been turned into Stripe meter events.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateField()
    calls = models.PositiveIntegerField(default=0)
    reported_calls = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "day"], name="billing_usage_day"),
            models.CheckConstraint(
                condition=models.Q(reported_calls__lte=models.F("calls")),
                name="billing_usage_reported_lte_calls",
            ),
        ]
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day}: {self.calls}"


class MeterEvent(models.Model):
    """One Stripe meter event, written before it is sent (an outbox).

    The ``identifier`` is fixed when the row is written, so a retry sends the
    same identifier and Stripe counts it once; a failed send stays pending and
    is retried by the next report run.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    identifier = models.CharField(max_length=100, unique=True)
    stripe_customer_id = models.CharField(max_length=255)
    value = models.PositiveIntegerField()
    day = models.DateField()
    timestamp = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["id"],
                condition=models.Q(sent_at__isnull=True),
                name="billing_meter_event_pending",
            )
        ]

    def __str__(self) -> str:
        return self.identifier


class StripePrice(models.Model):
    """The Stripe price behind a plan's lookup key (written by
    ``billing_sync_plans``; Checkout reads it)."""

    lookup_key = models.CharField(max_length=200)
    livemode = models.BooleanField(default=False)
    plan = models.CharField(
        max_length=20, choices=[(k.value, k.value) for k in PlanKey]
    )
    metered = models.BooleanField(default=False)
    stripe_price_id = models.CharField(max_length=255)
    stripe_product_id = models.CharField(max_length=255)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["lookup_key", "livemode"], name="billing_price_lookup_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.lookup_key} → {self.stripe_price_id}"
