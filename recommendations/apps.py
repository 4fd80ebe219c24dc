from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = "Recommendations"

    def ready(self) -> None:
        from learning.signals import interaction_recorded
        from recommendations.receivers import on_interaction_recorded

        interaction_recorded.connect(
            on_interaction_recorded, dispatch_uid="recommendations-feed-refresh"
        )
