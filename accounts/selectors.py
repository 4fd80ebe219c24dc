from __future__ import annotations

import hashlib
import hmac

from django.db.models import QuerySet

from accounts.models import ApiKey, User

API_KEY_PREFIX_LENGTH = 8


def hash_api_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_list(*, user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user)


def api_key_lookup(*, raw_key: str) -> ApiKey | None:
    """The active key matching ``<prefix>.<secret>``, or None."""
    prefix, _, secret = raw_key.partition(".")
    if len(prefix) != API_KEY_PREFIX_LENGTH or not secret:
        return None
    key = (
        ApiKey.objects.select_related("user")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if key is None or not hmac.compare_digest(
        key.hashed_secret, hash_api_secret(secret)
    ):
        return None
    if not key.user.is_active:
        return None
    return key
