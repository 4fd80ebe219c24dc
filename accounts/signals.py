"""Keep the API-key and token-user caches (``selectors.api_key_lookup``,
``selectors.user_for_token``) true to the database.

Saving or deleting a key, or saving its user (deactivated, staff flag
changed...), deletes the cached rows, so a revocation or a deactivation holds
on the next request in every process. Bulk ``QuerySet.update()`` calls skip
these signals: revoke keys through ``services.api_key_revoke`` or ``save()``.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import ApiKey, User
from accounts.selectors import api_key_cache_key, user_cache_key


@receiver([post_save, post_delete], sender=ApiKey)
def forget_api_key(sender: type, instance: ApiKey, **kwargs: Any) -> None:
    cache.delete(api_key_cache_key(instance.prefix))


@receiver([post_save, post_delete], sender=User)
def forget_users_api_keys(sender: type, instance: User, **kwargs: Any) -> None:
    prefixes = ApiKey.objects.filter(user_id=instance.pk).values_list(
        "prefix", flat=True
    )
    keys = [user_cache_key(instance.pk), *(api_key_cache_key(p) for p in prefixes)]
    cache.delete_many(keys)
