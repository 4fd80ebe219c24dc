from __future__ import annotations

import random
import secrets
import time
from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth.password_validation import validate_password
from django.db import transaction
from django.utils import timezone

from accounts.errors import AccountsErrorCode
from accounts.models import ApiKey, User
from accounts.selectors import API_KEY_PREFIX_LENGTH, hash_api_secret
from apex_site.errors import ApplicationError, ErrorCode


@transaction.atomic
def user_register(
    *, email: str, password: str, display_name: str = "", **profile: str
) -> User:
    email = User.objects.normalize_email(email).lower()
    if User.objects.filter(email__iexact=email).exists():
        raise ApplicationError(
            "An account with this email already exists.",
            code=AccountsErrorCode.EMAIL_TAKEN,
            detail={"email": ["An account with this email already exists."]},
        )
    user = User(email=email, display_name=display_name, **profile)
    validate_password(password, user)  # Django's ValidationError → error shape
    user.set_password(password)
    user.full_clean()
    user.save()
    return user


def user_profile_update(*, user: User, **fields: str) -> User:
    allowed = {"display_name", "age_band", "gender", "occupation"}
    unknown = set(fields) - allowed
    if unknown:
        raise ApplicationError(f"Unknown profile fields: {sorted(unknown)}")
    for name, value in fields.items():
        setattr(user, name, value)
    user.full_clean(exclude=["password"])
    user.save(update_fields=list(fields))
    return user


def api_key_create(
    *,
    user: User,
    name: str,
    scopes: Iterable[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with the raw secret, which is never stored.

    ``scopes``: what the key may call (``ApiKey.Scope``; default all of them);
    ``expires_at``: when it stops working (default never).
    """
    name = name.strip()
    if not name:
        raise ApplicationError("Give the key a name.", detail={"name": ["Required."]})
    requested = set(ApiKey.Scope.values if scopes is None else scopes)
    chosen = [scope for scope in ApiKey.Scope.values if scope in requested]
    unknown = requested - set(ApiKey.Scope.values)
    if not chosen or unknown:
        raise ApplicationError(
            "Choose one or more scopes: " + ", ".join(ApiKey.Scope.values) + ".",
            detail={"scopes": sorted(unknown) or ["Required."]},
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError(
            "The expiry must be in the future.",
            detail={"expires_at": ["Must be in the future."]},
        )
    while True:
        prefix = secrets.token_hex(API_KEY_PREFIX_LENGTH // 2)
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        user=user,
        name=name[:80],
        prefix=prefix,
        hashed_secret=hash_api_secret(secret),
        scopes=list(chosen),
        expires_at=expires_at,
    )
    return key, f"{prefix}.{secret}"


def api_key_revoke(*, user: User, key_id: int) -> ApiKey:
    key = ApiKey.objects.filter(user=user, pk=key_id).first()
    if key is None:
        raise ApplicationError(
            "No such API key.", code=ErrorCode.NOT_FOUND, status_code=404
        )
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


_touched: dict[str, float] = {}  # key prefix -> time.monotonic() of the last touch


def api_key_touch(*, key: ApiKey) -> None:
    """Record use, at most once a minute per key and process (after 60 to 90
    s: keys first used together are not all written again together).

    The key may come from the cache (its ``last_used_at`` then is stale), so
    the minute is counted per process rather than from the row.
    """
    now = time.monotonic()
    if now - _touched.get(key.prefix, -1e9) > random.uniform(60, 90):
        _touched[key.prefix] = now
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
