from django.urls import path

from .platform import PlatformPingApi, PlatformReadinessApi, PlatformStatusApi

urlpatterns = [
    path("platform/ping", PlatformPingApi.as_view(), name="platform-ping"),
    path("platform/status", PlatformStatusApi.as_view(), name="platform-status"),
    path(
        "platform/readiness", PlatformReadinessApi.as_view(), name="platform-readiness"
    ),
]
