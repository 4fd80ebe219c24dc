from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = "Recommendations"

    def ready(self) -> None:
        from billing.signals import entitlements_changed
        from learning.signals import events_applied
        from recommendations.receivers import (
            on_entitlements_changed,
            on_events_applied,
        )

        events_applied.connect(
            on_events_applied, dispatch_uid="recommendations-feed-refresh"
        )
        entitlements_changed.connect(
            on_entitlements_changed, dispatch_uid="recommendations-account-push"
        )
