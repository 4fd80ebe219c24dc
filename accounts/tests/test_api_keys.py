import re

import pytest

from accounts.models import ApiKey
from accounts.services import api_key_create

pytestmark = pytest.mark.django_db


ALL_SCOPES = ["read", "events", "billing"]


def _create_key_on_account_page(client, name="ci server", **fields) -> str:
    data = {"name": name, "scopes": ALL_SCOPES, "expires_in": "90", **fields}
    response = client.post("/accounts/api-keys/", data, follow=True)
    assert response.status_code == 200
    match = re.search(r'data-testid="new-api-key">([^<]+)<', response.content.decode())
    assert match, "the new key is shown on the account page"
    return match.group(1)


def test_key_create_use_revoke_then_rejected(client, api_client, user):
    client.force_login(user)
    raw = _create_key_on_account_page(client)

    key = ApiKey.objects.get(user=user)
    assert raw.split(".")[1] not in key.hashed_secret  # only the hash is stored
    assert key.hashed_secret != raw

    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    me = api_client.get("/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["email"] == user.email
    key.refresh_from_db()
    assert key.last_used_at is not None

    revoked = client.post(f"/accounts/api-keys/{key.pk}/revoke/", follow=True)
    assert "Revoked" in revoked.content.decode()

    rejected = api_client.get("/v1/auth/me")
    assert rejected.status_code == 401
    assert rejected.json()["code"] == "authentication_failed"


def test_the_key_is_shown_only_once(client, user):
    client.force_login(user)
    _create_key_on_account_page(client)
    again = client.get("/accounts/")
    assert 'data-testid="new-api-key"' not in again.content.decode()


def test_a_tampered_key_is_rejected(api_client, user):
    _key, raw = api_key_create(user=user, name="x")
    tampered = raw[:-1] + ("B" if raw.endswith("A") else "A")  # always a change
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {tampered}")
    assert api_client.get("/v1/auth/me").status_code == 401


def test_a_key_of_a_deactivated_user_is_rejected(api_client, user):
    _key, raw = api_key_create(user=user, name="x")
    user.is_active = False
    user.save()
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert api_client.get("/v1/auth/me").status_code == 401


def test_nobody_can_revoke_someone_elses_key(client, user, django_user_model):
    key, _raw = api_key_create(user=user, name="owner's key")
    outsider = django_user_model.objects.create_user("eve@example.com", "x" * 12)
    client.force_login(outsider)
    response = client.post(f"/accounts/api-keys/{key.pk}/revoke/", follow=True)
    assert "No such API key" in response.content.decode()
    key.refresh_from_db()
    assert key.is_active


def test_a_nameless_key_is_refused(client, user):
    client.force_login(user)
    response = client.post(
        "/accounts/api-keys/", {"name": "", "scopes": ALL_SCOPES}, follow=True
    )
    assert "Give the key a name" in response.content.decode()
    assert not ApiKey.objects.exists()


# ------------------------------------------------------------ the lookup cache
def test_a_known_key_is_authenticated_without_a_database_query(
    user, django_assert_num_queries
):
    from accounts.selectors import api_key_lookup

    key, raw = api_key_create(user=user, name="x")
    assert api_key_lookup(raw_key=raw).pk == key.pk  # fills the cache
    with django_assert_num_queries(0):
        cached = api_key_lookup(raw_key=raw)
    assert cached.pk == key.pk and cached.user.pk == user.pk
    wrong_secret = raw.split(".")[0] + ".not-the-secret"
    with django_assert_num_queries(0):
        assert api_key_lookup(raw_key=wrong_secret) is None


def test_revoking_or_deactivating_after_use_holds_on_the_next_request(
    api_client, user, django_user_model
):
    key, raw = api_key_create(user=user, name="x")
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert api_client.get("/v1/auth/me").status_code == 200  # now cached
    user.is_active = False
    user.save()
    assert api_client.get("/v1/auth/me").status_code == 401

    other = django_user_model.objects.create_user("ann@example.com", "x" * 12)
    key2, raw2 = api_key_create(user=other, name="y")
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw2}")
    assert api_client.get("/v1/auth/me").status_code == 200
    from django.utils import timezone

    key2.revoked_at = timezone.now()  # e.g. from the Django admin
    key2.save()
    assert api_client.get("/v1/auth/me").status_code == 401
