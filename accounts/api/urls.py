from django.urls import path
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts.api.views import MeApi, RegisterApi

urlpatterns = [
    path("register", RegisterApi.as_view(), name="auth-register"),
    path("token", TokenObtainPairView.as_view(), name="auth-token"),
    path("token/refresh", TokenRefreshView.as_view(), name="auth-token-refresh"),
    path("me", MeApi.as_view(), name="auth-me"),
]
