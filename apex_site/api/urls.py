from django.urls import path

from .platform import PlatformReadinessApi, PlatformStatusApi

urlpatterns = [
    path("platform/status", PlatformStatusApi.as_view(), name="platform-status"),
    path(
        "platform/readiness", PlatformReadinessApi.as_view(), name="platform-readiness"
    ),
]
