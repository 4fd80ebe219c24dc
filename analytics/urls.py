from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
    path("staff/analytics/", views.index, name="index"),
    path("staff/analytics/fairness/", views.fairness, name="fairness"),
    path("staff/analytics/slo/", views.slo_page, name="slo"),
    path("staff/analytics/privacy/", views.privacy, name="privacy"),
    path("staff/analytics/models/", views.models, name="models"),
    path("staff/analytics/operations/", views.operations, name="operations"),
]
