"""API keys' scopes and expiry, enforced by ApiKeyAuthentication."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_create
from apex_site.errors import ApplicationError

pytestmark = pytest.mark.django_db


def _as_key(api_client, raw):
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return api_client


def test_a_read_only_key_reads_but_cannot_send_events_or_touch_billing(
    api_client, user
):
    _key, raw = api_key_create(user=user, name="dashboard", scopes=["read"])
    client = _as_key(api_client, raw)
    assert client.get("/v1/auth/me").status_code == 200

    events = client.post("/v1/events", {"events": []}, format="json")
    assert events.status_code == 403
    body = events.json()
    assert body["code"] == "api_key_scope_missing"
    assert "events" in body["message"]
    assert body["detail"]["required_scopes"] == ["events"]
    assert body["detail"]["key_scopes"] == ["read"]

    usage = client.get("/v1/billing/usage")
    assert usage.status_code == 403
    assert usage.json()["detail"]["required_scopes"] == ["billing"]

    # a write that is neither events nor billing needs every scope
    profile = client.patch("/v1/auth/me", {"occupation": "x"}, format="json")
    assert profile.status_code == 403
    assert profile.json()["detail"]["required_scopes"] == ["read", "events", "billing"]


def test_an_events_key_sends_events_but_cannot_read(api_client, user):
    _key, raw = api_key_create(user=user, name="ingest", scopes=["events"])
    client = _as_key(api_client, raw)
    sent = client.post("/v1/events", {"events": []}, format="json")
    assert sent.status_code != 403  # past authentication (the body is checked next)
    read = client.get("/v1/auth/me")
    assert read.status_code == 403
    assert read.json()["detail"]["required_scopes"] == ["read"]


def test_a_billing_key_reads_usage(api_client, user):
    _key, raw = api_key_create(user=user, name="finance", scopes=["billing"])
    assert _as_key(api_client, raw).get("/v1/billing/usage").status_code == 200


def test_a_key_made_without_scopes_has_all_of_them(user):
    key, _raw = api_key_create(user=user, name="script")
    assert key.scopes == ["read", "events", "billing"]
    assert key.expires_at is None


def test_an_expired_key_gets_a_coded_401_even_from_the_cache(api_client, user):
    key, raw = api_key_create(
        user=user, name="short", expires_at=timezone.now() + timedelta(hours=1)
    )
    client = _as_key(api_client, raw)
    assert client.get("/v1/auth/me").status_code == 200  # cached now
    ApiKey.objects.filter(pk=key.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    # the cached row still says "in an hour": expiry is a time, checked on use
    from django.core.cache import cache

    from accounts.selectors import api_key_cache_key

    cached = cache.get(api_key_cache_key(key.prefix))
    cached.expires_at = timezone.now() - timedelta(seconds=1)
    cache.set(api_key_cache_key(key.prefix), cached, 60)
    expired = client.get("/v1/auth/me")
    assert expired.status_code == 401
    assert expired.json()["code"] == "api_key_expired"
    assert "WWW-Authenticate" in expired


@pytest.mark.parametrize(
    ("scopes", "expires_at"),
    [([], None), (["read", "admin"], None), (["read"], timezone.now())],
)
def test_the_service_refuses_bad_scopes_and_a_past_expiry(user, scopes, expires_at):
    with pytest.raises(ApplicationError):
        api_key_create(user=user, name="x", scopes=scopes, expires_at=expires_at)


def test_the_account_page_creates_a_scoped_expiring_key_and_shows_both(client, user):
    client.force_login(user)
    page = client.get("/accounts/").content.decode()
    # the defaults: every scope ticked, 90 days
    for scope in ("read", "events", "billing"):
        assert re.search(rf'value="{scope}"[^>]*checked', page)
    assert re.search(r'<option value="90"[^>]*selected', page)

    response = client.post(
        "/accounts/api-keys/",
        {"name": "reader", "scopes": ["read"], "expires_in": "30"},
        follow=True,
    )
    html = response.content.decode()
    key = ApiKey.objects.get(user=user)
    assert key.scopes == ["read"]
    assert timedelta(days=29) < key.expires_at - timezone.now() <= timedelta(days=30)
    assert re.search(r'data-testid="api-key-scopes">read<', html)
    assert f"{key.expires_at:%Y-%m-%d}" in html

    never = client.post(
        "/accounts/api-keys/",
        {"name": "forever", "scopes": ["read", "events"], "expires_in": "never"},
        follow=True,
    )
    assert ApiKey.objects.get(name="forever").expires_at is None
    assert "read, events" in never.content.decode()


def test_the_form_requires_a_scope(client, user):
    client.force_login(user)
    response = client.post("/accounts/api-keys/", {"name": "none"}, follow=True)
    assert "Choose at least one scope" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_an_expired_key_shows_as_expired(client, user):
    key, _raw = api_key_create(
        user=user, name="old", expires_at=timezone.now() + timedelta(seconds=60)
    )
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now())
    client.force_login(user)
    assert ">expired<" in client.get("/accounts/").content.decode()
