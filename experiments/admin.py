from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils.html import format_html

from experiments import services
from experiments.models import Experiment, Impression, Variant


class VariantFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        forms = [
            f for f in self.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE", False)
        ]  # fmt: skip
        if not forms:
            return
        total = sum(f.cleaned_data.get("share") or 0 for f in forms)
        if abs(total - 1.0) > 0.01:
            raise ValidationError(
                f"Traffic shares must sum to 1 (they sum to {total:.3f})."
            )
        for f in forms:
            eps = f.cleaned_data.get("epsilon")
            if eps is not None and not 0 <= eps <= 1:
                raise ValidationError("epsilon must lie in [0, 1].")
            div = f.cleaned_data.get("diversity")
            if div is not None and not 0 <= div <= 1:
                raise ValidationError("diversity must lie in [0, 1].")


class VariantInline(admin.TabularInline):
    model = Variant
    formset = VariantFormSet
    extra = 0
    fields = (
        "position", "key", "share", "weights_version", "diversity",
        "exploration", "epsilon", "thompson_scale",
    )  # fmt: skip


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "status", "coverage", "started_at", "results")
    list_filter = ("status",)
    inlines = [VariantInline]
    actions = ["start", "stop"]
    readonly_fields = ("status", "started_at", "stopped_at", "created_at")

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.started_at is not None:
            fields.append("key")  # re-keying would reshuffle every user
        return fields

    @admin.display(description="results")
    def results(self, obj: Experiment) -> str:
        return format_html(
            '<a href="{}">results</a>', reverse("experiments:results", args=[obj.key])
        )

    @admin.action(description="Start the selected experiments")
    def start(self, request, queryset) -> None:
        for exp in queryset:
            services.experiment_start(experiment=exp)
        self.message_user(request, f"{queryset.count()} started", messages.SUCCESS)

    @admin.action(description="Stop the selected experiments")
    def stop(self, request, queryset) -> None:
        for exp in queryset:
            services.experiment_stop(experiment=exp)
        self.message_user(request, f"{queryset.count()} stopped", messages.SUCCESS)


@admin.register(Impression)
class ImpressionAdmin(admin.ModelAdmin):
    list_display = ("request_id", "user_id", "surface", "experiment", "variant",
                    "policy", "weights_version", "served_at")  # fmt: skip
    list_filter = ("surface", "policy", "experiment")
    search_fields = ("request_id",)
    date_hierarchy = "served_at"
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
