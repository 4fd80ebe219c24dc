from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet

from accounts.models import ApiKey, User

API_KEY_PREFIX_LENGTH = 8
_MISSING = "missing"  # cached "no active key with this prefix"


def api_key_cache_key(prefix: str) -> str:
    return f"apikey:{prefix}"


def hash_api_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_list(*, user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user)


def api_key_lookup(*, raw_key: str) -> ApiKey | None:
    """The active key matching ``<prefix>.<secret>``, or None.

    The key row (with its user) is cached under its prefix for
    ``APEX_API_KEY_CACHE_SECONDS`` (the cache is Redis in production, shared
    by every process): an API request then costs no database query for
    authentication. Revoking a key or saving its user deletes the entry
    (``accounts.signals``), so a revocation holds at once in every process.
    """
    prefix, _, secret = raw_key.partition(".")
    if len(prefix) != API_KEY_PREFIX_LENGTH or not secret:
        return None
    seconds = settings.APEX_API_KEY_CACHE_SECONDS
    cached = cache.get(api_key_cache_key(prefix)) if seconds else None
    if cached is None:
        cached = (
            ApiKey.objects.select_related("user")
            .filter(prefix=prefix, revoked_at__isnull=True)
            .first()
        ) or _MISSING
        if seconds:
            cache.set(api_key_cache_key(prefix), cached, seconds)
    key = None if cached == _MISSING else cached
    if key is None or not hmac.compare_digest(
        key.hashed_secret, hash_api_secret(secret)
    ):
        return None
    if not key.user.is_active:
        return None
    return key


def user_exists(*, user_id: int) -> bool:
    return User.objects.filter(pk=user_id).exists()


def user_cache_key(user_id: int) -> str:
    return f"accounts:user:{user_id}"


def user_for_token(*, user_id: int) -> User | None:
    """The user a valid access token names, or None (no such user).

    Cached for ``APEX_JWT_USER_CACHE_SECONDS`` (Redis in production, shared by
    every process), so a JWT request costs no database query for
    authentication, as an API-key request does; saving or deleting the user
    drops the entry (``accounts.signals``), so a deactivation holds on the
    next request everywhere.
    """
    seconds = settings.APEX_JWT_USER_CACHE_SECONDS
    key = user_cache_key(user_id)
    cached = cache.get(key) if seconds else None
    if cached is None:
        cached = User.objects.filter(pk=user_id).first() or _MISSING
        if seconds:
            cache.set(key, cached, seconds)
    return None if cached == _MISSING else cached
