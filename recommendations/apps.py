from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = "Recommendations"

    def ready(self) -> None:
        from learning.signals import events_applied
        from recommendations.receivers import on_events_applied

        events_applied.connect(
            on_events_applied, dispatch_uid="recommendations-feed-refresh"
        )
