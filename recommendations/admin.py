"""Admin for ensemble weight versions: compare side by side, activate one."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.html import format_html

from recommendations import services
from recommendations.models import EnsembleWeights

ESTIMATORS = ("dr", "ips", "snips", "ndcg")


@admin.register(EnsembleWeights)
class EnsembleWeightsAdmin(admin.ModelAdmin):
    list_display = (
        "version", "status", "objective", "estimated_value", "weights_summary",
        "normalisation", "created_by", "created_at", "activated_at",
    )  # fmt: skip
    list_filter = ("status", "objective")
    ordering = ("-version",)
    actions = ("activate_selected", "compare_selected")
    readonly_fields = (
        "version", "status", "objective", "estimated_value", "estimates_table",
        "gate_threshold", "fitted_on_pretty", "created_by", "created_at",
        "activated_at",
    )  # fmt: skip
    fields = (
        "version",
        "status",
        "weights",
        "normalisation",
        *readonly_fields[2:],
        "notes",
    )

    def get_readonly_fields(self, request, obj=None):
        # A stored version is a record of a decision: its weights never change.
        if obj is not None:
            return ("weights", "normalisation", *self.readonly_fields)
        return self.readonly_fields

    @admin.display(description="weights")
    def weights_summary(self, obj: EnsembleWeights) -> str:
        return ", ".join(f"{n} {w:.2f}" for n, w in obj.weights.items() if w > 0)

    @admin.display(description="estimates")
    def estimates_table(self, obj: EnsembleWeights) -> str:
        rows = "".join(
            format_html(
                "<tr><td>{}</td><td>{:.4f}</td><td>{}</td></tr>",
                name,
                obj.estimates[name].get("value", float("nan")),
                _interval(obj.estimates[name]),
            )
            for name in ESTIMATORS
            if name in obj.estimates
        )
        return format_html("<table>{}</table>", rows) if rows else "-"

    @admin.display(description="fitted on")
    def fitted_on_pretty(self, obj: EnsembleWeights) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.fitted_on, indent=2))

    def save_model(self, request, obj: EnsembleWeights, form, change: bool) -> None:
        if not change:
            # Hand-entered versions go through the same numbering as fitted ones.
            fit = {"weights": obj.weights, "normalisation": obj.normalisation,
                   "objective": "manual"}  # fmt: skip
            created = services.ensemble_weights_propose(
                fit=fit, created_by=request.user, notes=obj.notes
            )
            obj.pk, obj.version = created.pk, created.version
            return
        super().save_model(request, obj, form, change)

    @admin.action(description="Activate the selected version")
    def activate_selected(self, request, queryset) -> None:
        if queryset.count() != 1:
            self.message_user(
                request, "Select exactly one version to activate.", messages.ERROR
            )
            return
        chosen = services.ensemble_weights_activate(version=queryset.get().version)
        self.message_user(
            request, f"Version {chosen.version} is now active.", messages.SUCCESS
        )

    @admin.action(description="Compare the selected versions side by side")
    def compare_selected(self, request, queryset) -> TemplateResponse | None:
        versions = list(queryset.order_by("version"))
        if len(versions) < 2:
            self.message_user(
                request, "Select at least two versions to compare.", messages.ERROR
            )
            return None
        members = sorted({m for v in versions for m in v.weights})
        rows = [(m, [v.weights.get(m, 0.0) for v in versions]) for m in members]
        estimates = [
            (name, [v.estimates.get(name, {}).get("value") for v in versions])
            for name in ESTIMATORS
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Compare ensemble weights",
            "opts": self.model._meta,
            "versions": versions,
            "weight_rows": rows,
            "estimate_rows": estimates,
        }
        return TemplateResponse(
            request, "admin/recommendations/ensembleweights/compare.html", context
        )


def _interval(estimate: dict) -> str:
    low, high = estimate.get("low"), estimate.get("high")
    if low is None or high is None:
        return ""
    return f"[{low:.4f}, {high:.4f}]"
