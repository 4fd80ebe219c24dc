"""Refresh-token rotation, the blacklist, and logout."""

from __future__ import annotations

import pytest

from accounts.tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def _pair(api_client, user):
    answer = api_client.post(
        "/v1/auth/token", {"email": user.email, "password": PASSWORD}
    )
    assert answer.status_code == 200
    return answer.json()


def test_a_refresh_rotates_and_the_old_refresh_token_is_refused(api_client, user):
    first = _pair(api_client, user)["refresh"]
    rotated = api_client.post("/v1/auth/token/refresh", {"refresh": first})
    assert rotated.status_code == 200
    second = rotated.json()["refresh"]
    assert second != first and rotated.json()["access"]

    replay = api_client.post("/v1/auth/token/refresh", {"refresh": first})
    assert replay.status_code == 401
    assert replay.json()["code"] == "token_not_valid"
    assert (
        api_client.post("/v1/auth/token/refresh", {"refresh": second}).status_code
        == 200
    )


def test_logout_blacklists_the_refresh_token(api_client, user):
    pair = _pair(api_client, user)
    out = api_client.post("/v1/auth/logout", {"refresh": pair["refresh"]})
    assert out.status_code == 200
    refused = api_client.post("/v1/auth/token/refresh", {"refresh": pair["refresh"]})
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_not_valid"
    # a second logout with it is refused the same way
    assert (
        api_client.post("/v1/auth/logout", {"refresh": pair["refresh"]}).status_code
        == 401
    )
    # another session of the same user is untouched
    other = _pair(api_client, user)
    assert (
        api_client.post(
            "/v1/auth/token/refresh", {"refresh": other["refresh"]}
        ).status_code
        == 200
    )


def test_logout_refuses_garbage(api_client):
    answer = api_client.post("/v1/auth/logout", {"refresh": "not-a-token"})
    assert answer.status_code == 401
    assert answer.json()["code"] == "token_not_valid"
