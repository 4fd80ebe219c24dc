"""DRF authentication: ``Authorization: Api-Key <key>`` (with its scopes and
expiry), and JWTs whose user row comes from the cache."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import SAFE_METHODS
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.utils import get_md5_hash_password

from accounts.errors import AccountsErrorCode
from accounts.models import ApiKey
from accounts.selectors import api_key_lookup, user_for_token
from accounts.services import api_key_touch

KEYWORD = "Api-Key"

# What an API key must hold for a call: the first rule whose methods (None:
# any) and path prefix match. Anything else: reads need `read`; other writes
# (the profile, staff operations) need every scope, so a key limited to some
# scopes can do no more than they name.
SCOPE_RULES: tuple[tuple[frozenset[str] | None, str, str], ...] = (
    (None, "/v1/billing", ApiKey.Scope.BILLING),
    (frozenset({"POST", "PUT", "PATCH", "DELETE"}), "/v1/events", ApiKey.Scope.EVENTS),
)


def required_scopes(request) -> list[str]:
    """The scopes an API key needs for ``request`` (see ``SCOPE_RULES``)."""
    for methods, prefix, scope in SCOPE_RULES:
        if (methods is None or request.method in methods) and request.path.startswith(
            prefix
        ):
            return [str(scope)]
    if request.method in SAFE_METHODS:
        return [str(ApiKey.Scope.READ)]
    return list(ApiKey.Scope.values)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(
            "latin-1", errors="replace"
        )
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != KEYWORD.lower():
            return None
        raw_key = raw_key.strip()
        if not raw_key:
            raise exceptions.AuthenticationFailed("Api-Key header without a key.")
        key = api_key_lookup(raw_key=raw_key)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        if key.is_expired:
            raise exceptions.AuthenticationFailed(
                f"This API key expired at {key.expires_at:%Y-%m-%dT%H:%MZ}; "
                "create a new one on your account page.",
                code=AccountsErrorCode.API_KEY_EXPIRED,
            )
        needed = required_scopes(request)
        missing = [scope for scope in needed if scope not in key.scopes]
        if missing:
            message = (
                f"This API key lacks the scope {', '.join(missing)} that "
                f"{request.method} {request.path} needs."
            )
            raise exceptions.PermissionDenied(
                {
                    "detail": message,
                    "code": AccountsErrorCode.API_KEY_SCOPE,
                    "required_scopes": needed,
                    "key_scopes": list(key.scopes),
                },
                code=AccountsErrorCode.API_KEY_SCOPE,
            )
        api_key_touch(key=key)
        return key.user, key

    def authenticate_header(self, request) -> str:
        return KEYWORD


class CachedJWTAuthentication(JWTAuthentication):
    """simplejwt's ``JWTAuthentication`` with the user read through
    ``accounts.selectors.user_for_token`` (cached) instead of one query per
    request. The checks are simplejwt's own, in its order (user id claim,
    active user, token revoked by a password change when configured)."""

    def get_user(self, validated_token):
        try:
            user_id = int(validated_token[jwt_settings.USER_ID_CLAIM])
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidToken(
                _("Token contained no recognizable user identification")
            ) from e
        user = user_for_token(user_id=user_id)
        if user is None:
            raise exceptions.AuthenticationFailed(
                _("User not found"), code="user_not_found"
            )
        if jwt_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise exceptions.AuthenticationFailed(
                _("User is inactive"), code="user_inactive"
            )
        if jwt_settings.CHECK_REVOKE_TOKEN and validated_token.get(
            jwt_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            raise exceptions.AuthenticationFailed(
                _("The user's password has been changed."), code="password_changed"
            )
        return user


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`; create keys on your account page. "
            "A key calls only what its scopes cover (`read`: GET calls; `events`: "
            "POST /v1/events; `billing`: /v1/billing/*; other writes: all three) "
            "— else 403 `api_key_scope_missing` — and nothing after its expiry "
            "(401 `api_key_expired`).",
        }


class CachedJWTScheme(SimpleJWTScheme):
    """The same ``jwtAuth`` security scheme in the OpenAPI schema."""

    target_class = "accounts.authentication.CachedJWTAuthentication"
