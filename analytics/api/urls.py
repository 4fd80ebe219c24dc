from django.urls import path

from analytics.api.views import OfflineMetricsApi, RecommendationAnalyticsApi, SloApi

urlpatterns = [
    path(
        "events/recommendation-analytics",
        RecommendationAnalyticsApi.as_view(),
        name="recommendation-analytics",
    ),
    path(
        "evaluation/offline-metrics",
        OfflineMetricsApi.as_view(),
        name="offline-metrics",
    ),
    path("platform/slo", SloApi.as_view(), name="platform-slo"),
]
