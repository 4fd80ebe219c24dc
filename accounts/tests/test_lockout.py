"""Failed-login lock-out (django-axes) and the auth endpoints' throttles."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from rest_framework.test import APIClient

from accounts.tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

_addresses = itertools.count(10)


def _address() -> str:
    """A client address no other test used (the throttles' counters live in
    Redis, which outlives each test's transaction)."""
    return f"198.51.100.{next(_addresses) % 250}"


def _page_login(client, email, password, ip):
    return client.post(
        "/accounts/login/",
        {"username": email, "password": password},
        REMOTE_ADDR=ip,
    )


def _token(api_client, email, password, ip):
    return api_client.post(
        "/v1/auth/token", {"email": email, "password": password}, REMOTE_ADDR=ip
    )


def _age_attempts(minutes: int) -> None:
    """Move every recorded failure ``minutes`` into the past (time passing,
    without a fake clock)."""
    for attempt in AccessAttempt.objects.all():
        attempt.attempt_time -= timedelta(minutes=minutes)
        attempt.save(update_fields=["attempt_time"])


def test_the_login_page_locks_the_pair_out_after_the_limit(client, user, settings):
    ip = _address()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        wrong = _page_login(client, user.email, "wrong password", ip)
        assert wrong.status_code == 200  # the form, with its error
    locked = _page_login(client, user.email, "wrong password", ip)
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert int(locked["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()

    # while locked, even the right password is refused from that address...
    refused = _page_login(client, user.email.upper(), PASSWORD, ip)
    assert refused.status_code == 429
    assert "_auth_user_id" not in client.session
    # ...but the owner at another address logs in: an attacker cannot lock
    # someone else out
    owner = Client()
    assert _page_login(owner, user.email, PASSWORD, _address()).status_code == 302


def test_the_lock_out_ends_after_the_cool_off_and_failures_do_not_extend_it(
    client, user, settings
):
    ip = _address()
    for _ in range(settings.AXES_FAILURE_LIMIT + 3):  # keeps failing while locked
        _page_login(client, user.email, "wrong password", ip)
    assert _page_login(client, user.email, PASSWORD, ip).status_code == 429

    cool_off_minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    _age_attempts(cool_off_minutes - 1)  # not yet over
    assert _page_login(client, user.email, PASSWORD, ip).status_code == 429
    _age_attempts(2)  # the cool-off has passed since the first lock-out
    assert _page_login(client, user.email, PASSWORD, ip).status_code == 302


def test_the_token_api_answers_the_lock_out_with_a_coded_429(
    api_client, user, settings
):
    ip = _address()
    answers = [
        _token(api_client, user.email, "wrong password", ip)
        for _ in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert [a.status_code for a in answers[:-1]] == [401] * (len(answers) - 1)
    assert answers[-1].status_code == 429
    body = answers[-1].json()
    assert body["code"] == "login_locked_out"
    assert "Too many failed logins" in body["message"]
    assert answers[-1]["Retry-After"] == str(
        int(settings.AXES_COOLOFF_TIME.total_seconds())
    )

    right = _token(api_client, user.email, PASSWORD, ip)
    assert right.status_code == 429  # locked: the password is not even checked
    assert _token(api_client, user.email, PASSWORD, _address()).status_code == 200


def test_page_and_api_failures_count_together_and_case_does_not_split_them(
    client, api_client, user, settings
):
    ip = _address()
    for i in range(settings.AXES_FAILURE_LIMIT - 1):
        email = user.email.upper() if i % 2 else user.email
        _page_login(client, email, "wrong password", ip)
    last = _token(api_client, user.email.title(), "wrong password", ip)
    assert last.status_code == 429


def test_a_success_resets_the_count(client, user, settings):
    ip = _address()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _page_login(client, user.email, "wrong password", ip)
    assert _page_login(client, user.email, PASSWORD, ip).status_code == 302
    client.post("/accounts/logout/")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _page_login(client, user.email, "wrong", ip).status_code == 200


def test_the_admin_login_is_locked_out_too(client, settings, django_user_model):
    staff = django_user_model.objects.create_superuser("root@example.com", PASSWORD)
    ip = _address()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post(
            "/admin/login/",
            {"username": staff.email, "password": "wrong password"},
            REMOTE_ADDR=ip,
        )
    assert response.status_code == 429


def test_authenticate_without_a_request_still_works(user, client):
    """Callers with no HTTP request (the test client's login, commands) are
    not refused by the lock-out backend."""
    from django.contrib.auth import authenticate

    assert authenticate(email=user.email, password=PASSWORD) == user
    assert authenticate(email=user.email, password="wrong") is None
    assert client.login(email=user.email, password=PASSWORD)


def test_the_lock_out_keys_on_the_forwarded_address_behind_a_proxy(
    api_client, user, settings
):
    """Behind nginx (one trusted proxy) the client is the last
    X-Forwarded-For entry, so the proxy's own address is not one shared key."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    attacker, owner = _address(), _address()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        last = api_client.post(
            "/v1/auth/token",
            {"email": user.email, "password": "wrong password"},
            REMOTE_ADDR="127.0.0.1",
            HTTP_X_FORWARDED_FOR=f"203.0.113.9, {attacker}",
        )
    assert last.status_code == 429
    ok = api_client.post(
        "/v1/auth/token",
        {"email": user.email, "password": PASSWORD},
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_FORWARDED_FOR=owner,
    )
    assert ok.status_code == 200


# ------------------------------------------------------------------ throttles
@pytest.mark.parametrize(
    "path", ["/v1/auth/token", "/v1/auth/token/refresh", "/v1/auth/logout"]
)
def test_the_token_endpoints_are_throttled_per_address(path, settings, user):
    settings.APEX_THROTTLE_AUTH = "3/min"
    api_client = APIClient()
    ip, other = _address(), _address()
    body = {"email": user.email, "password": "x", "refresh": "not-a-token"}
    for _ in range(3):
        assert api_client.post(path, body, REMOTE_ADDR=ip).status_code != 429
    throttled = api_client.post(path, body, REMOTE_ADDR=ip)
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "throttled"
    assert int(throttled["Retry-After"]) > 0
    assert api_client.post(path, body, REMOTE_ADDR=other).status_code != 429


def test_the_login_page_is_throttled_per_address(settings, user):
    settings.APEX_THROTTLE_AUTH = "2/min"
    client, ip = Client(), _address()
    for _ in range(2):
        assert _page_login(client, user.email, "x", ip).status_code == 200
    throttled = _page_login(client, user.email, PASSWORD, ip)
    assert throttled.status_code == 429
    assert "Too many attempts" in throttled.content.decode()
    assert client.get("/accounts/login/", REMOTE_ADDR=ip).status_code == 200


def test_sign_up_is_throttled_per_address(settings):
    settings.APEX_THROTTLE_SIGNUP = "2/hour"
    api_client, client, ip = APIClient(), Client(), _address()
    for n in range(2):
        created = api_client.post(
            "/v1/auth/register",
            {"email": f"new{n}@example.com", "password": PASSWORD},
            REMOTE_ADDR=ip,
        )
        assert created.status_code == 201
    refused = api_client.post(
        "/v1/auth/register",
        {"email": "new9@example.com", "password": PASSWORD},
        REMOTE_ADDR=ip,
    )
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    page = client.post(
        "/accounts/signup/",
        {"email": "page@example.com", "password1": PASSWORD, "password2": PASSWORD},
        REMOTE_ADDR=ip,
    )
    assert page.status_code == 429
