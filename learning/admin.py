from django.contrib import admin

from learning.models import ExportWatermark, Interaction


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
