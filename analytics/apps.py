from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "analytics"
    verbose_name = "Analytics: privacy, fairness, SLOs"

    def ready(self) -> None:
        from analytics import jobs

        jobs.connect()
