"""Admin: accounts with a manual plan override (audited), usage per user,
the audit trail, invoices and the meter-event outbox. dj-stripe registers
its own customers, subscriptions, events and webhook endpoints."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from billing import services
from billing.models import (
    BillingAccount,
    DailyUsage,
    Invoice,
    MeterEvent,
    PlanChange,
)
from billing.plans import PLANS


class BillingAccountForm(forms.ModelForm):
    override_plan = forms.ChoiceField(
        choices=[("", "— none (the subscription decides) —")]
        + [(str(k), p.name) for k, p in PLANS.items()],
        required=False,
    )
    override_reason = forms.CharField(
        required=False, help_text="Required with an override; kept in the audit trail"
    )

    class Meta:
        model = BillingAccount
        fields = ["user", "override_plan", "override_reason"]

    def clean(self):
        data = super().clean()
        if data.get("override_plan") and not data.get("override_reason"):
            self.add_error("override_reason", "Say why the plan is overridden.")
        return data


@admin.register(BillingAccount)
class BillingAccountAdmin(admin.ModelAdmin):
    form = BillingAccountForm
    list_display = ["user", "plan", "status", "override_plan", "updated_at"]
    list_filter = ["plan", "status", "override_plan"]
    search_fields = ["user__email", "stripe_customer_id", "stripe_subscription_id"]
    autocomplete_fields = ["user"]
    readonly_fields = [
        "plan",
        "status",
        "stripe_customer_id",
        "stripe_subscription_id",
        "current_period_start",
        "current_period_end",
        "cancel_at_period_end",
        "past_due_since",
        "last_event_id",
        "last_event_created",
        "updated_at",
    ]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "user"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        """Every override goes through the service, which audits it."""
        account = services.plan_override(
            user_id=obj.user_id,
            plan_key=form.cleaned_data.get("override_plan") or None,
            actor_id=request.user.pk,
            reason=form.cleaned_data.get("override_reason", ""),
        )
        obj.pk = account.pk
        obj.refresh_from_db()


@admin.register(PlanChange)
class PlanChangeAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "source", "from_plan", "to_plan", "actor"]
    list_filter = ["source", "to_plan"]
    search_fields = ["user__email", "stripe_event_id"]
    readonly_fields = [f.name for f in PlanChange._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DailyUsage)
class DailyUsageAdmin(admin.ModelAdmin):
    list_display = ["day", "user", "calls", "reported_calls"]
    list_filter = ["day"]
    search_fields = ["user__email"]
    date_hierarchy = "day"
    readonly_fields = ["user", "day", "calls", "reported_calls", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ["created", "user", "number", "status", "amount_due", "currency"]
    list_filter = ["status"]
    search_fields = ["user__email", "stripe_invoice_id", "number"]
    readonly_fields = [f.name for f in Invoice._meta.fields]


@admin.register(MeterEvent)
class MeterEventAdmin(admin.ModelAdmin):
    list_display = ["identifier", "user", "value", "day", "sent_at", "attempts"]
    list_filter = [("sent_at", admin.EmptyFieldListFilter)]
    search_fields = ["identifier", "user__email"]
    readonly_fields = [f.name for f in MeterEvent._meta.fields]
