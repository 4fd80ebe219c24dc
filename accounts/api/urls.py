from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts.api.views import MeApi, RegisterApi

# simplejwt's views, tagged and summarised for the OpenAPI schema.
TokenApi = extend_schema_view(
    post=extend_schema(summary="Obtain a JWT pair (email + password)", tags=["auth"])
)(TokenObtainPairView)
TokenRefreshApi = extend_schema_view(
    post=extend_schema(
        summary="Exchange a refresh token for a new access token", tags=["auth"]
    )
)(TokenRefreshView)

urlpatterns = [
    path("register", RegisterApi.as_view(), name="auth-register"),
    path("token", TokenApi.as_view(), name="auth-token"),
    path("token/refresh", TokenRefreshApi.as_view(), name="auth-token-refresh"),
    path("me", MeApi.as_view(), name="auth-me"),
]
