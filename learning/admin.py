from django.contrib import admin

from learning.models import DeadLetter, ExportWatermark, Interaction, UserProfile


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "movie", "kind", "value", "occurred_at", "source")
    list_filter = ("kind", "source")
    search_fields = ("=id", "user__email", "movie__title", "idempotency_key")
    raw_id_fields = ("user", "movie")
    readonly_fields = ("created_at",)
    date_hierarchy = "occurred_at"
    # The log is append-only history; corrections are new events.
    show_full_result_count = False


@admin.register(ExportWatermark)
class ExportWatermarkAdmin(admin.ModelAdmin):
    list_display = ("name", "last_event_id", "updated_at")


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    """Events the online coordinator gave up on (after 5 failed deliveries)."""

    list_display = ("event_id", "deliveries", "short_error", "created_at")
    search_fields = ("=event_id",)
    readonly_fields = ("event_id", "entry_id", "deliveries", "error", "created_at")

    @admin.display(description="error")
    def short_error(self, obj: DeadLetter) -> str:
        return obj.error[:120]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(UserProfile)
class UserProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "events_applied", "session_number", "last_event_at")
    raw_id_fields = ("user",)
    readonly_fields = ("updated_at",)
