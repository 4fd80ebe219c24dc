from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_view

from accounts.api.views import (
    LogoutApi,
    MeApi,
    RegisterApi,
    TokenObtainApi,
    TokenRefreshApi,
)

# simplejwt's views (accounts.api.views), tagged and summarised for the schema.
TokenApi = extend_schema_view(
    post=extend_schema(summary="Obtain a JWT pair (email + password)", tags=["auth"])
)(TokenObtainApi)
TokenRefreshApi = extend_schema_view(
    post=extend_schema(
        summary="Exchange a refresh token for a new pair (the old one is revoked)",
        tags=["auth"],
    )
)(TokenRefreshApi)
LogoutApi = extend_schema_view(
    post=extend_schema(summary="Log out: revoke a refresh token", tags=["auth"])
)(LogoutApi)

urlpatterns = [
    path("register", RegisterApi.as_view(), name="auth-register"),
    path("token", TokenApi.as_view(), name="auth-token"),
    path("token/refresh", TokenRefreshApi.as_view(), name="auth-token-refresh"),
    path("logout", LogoutApi.as_view(), name="auth-logout"),
    path("me", MeApi.as_view(), name="auth-me"),
]
