from django.urls import path

from .artifacts import ArtifactsHealthApi, ArtifactsReloadApi

urlpatterns = [
    path("artifacts/health", ArtifactsHealthApi.as_view(), name="artifacts-health"),
    path("artifacts/reload", ArtifactsReloadApi.as_view(), name="artifacts-reload"),
]
