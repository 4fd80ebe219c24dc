from django.contrib import admin, messages

from analytics.models import (
    FairnessAudit,
    OfflineEvaluation,
    PrivacyBudget,
    PrivacyRelease,
)


@admin.register(PrivacyBudget)
class PrivacyBudgetAdmin(admin.ModelAdmin):
    list_display = ("dataset", "period", "epsilon_cap", "epsilon_spent", "epsilon_left")
    readonly_fields = ("dataset", "period", "epsilon_spent", "updated_at")


@admin.register(PrivacyRelease)
class PrivacyReleaseAdmin(admin.ModelAdmin):
    list_display = ("created_at", "budget", "query", "epsilon", "noise_scale")
    readonly_fields = [f.name for f in PrivacyRelease._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(FairnessAudit)
class FairnessAuditAdmin(admin.ModelAdmin):
    list_display = ("created_at", "source", "artifact_version", "users", "alert_count")
    readonly_fields = [f.name for f in FairnessAudit._meta.fields]

    @admin.display(description="alerts")
    def alert_count(self, obj: FairnessAudit) -> int:
        return len(obj.alerts or [])

    def has_add_permission(self, request):
        return False

    def changelist_view(self, request, extra_context=None):
        latest = FairnessAudit.objects.first()
        if latest is not None and latest.alerts:
            messages.warning(
                request,
                "Fairness alert (latest audit, "
                f"{latest.created_at:%Y-%m-%d %H:%M}): "
                + "; ".join(a["message"] for a in latest.alerts),
            )
        return super().changelist_view(request, extra_context)


@admin.register(OfflineEvaluation)
class OfflineEvaluationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "artifact_version")
    readonly_fields = [f.name for f in OfflineEvaluation._meta.fields]

    def has_add_permission(self, request):
        return False
