import pytest

from accounts.models import User
from accounts.tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_register_then_token_then_authenticated_call(api_client):
    created = api_client.post(
        "/v1/auth/register",
        {"email": "Ada@Example.com", "password": PASSWORD, "age_band": "25_34"},
    )
    assert created.status_code == 201, created.json()
    assert created.json()["email"] == "ada@example.com"
    assert "password" not in created.json()

    token = api_client.post(
        "/v1/auth/token", {"email": "ada@example.com", "password": PASSWORD}
    )
    assert token.status_code == 200, token.json()
    access, refresh = token.json()["access"], token.json()["refresh"]

    assert api_client.get("/v1/auth/me").status_code == 401
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    me = api_client.get("/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["email"] == "ada@example.com"
    assert me.json()["age_band"] == "25_34"

    api_client.credentials()
    refreshed = api_client.post("/v1/auth/token/refresh", {"refresh": refresh})
    assert refreshed.status_code == 200
    assert refreshed.json()["access"]


def test_it_rejects_a_taken_email_with_the_error_shape(api_client, user):
    response = api_client.post(
        "/v1/auth/register", {"email": user.email.upper(), "password": PASSWORD}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "email_taken"
    assert set(body) == {"code", "message", "detail"}
    assert User.objects.filter(email=user.email).count() == 1


def test_it_rejects_a_weak_password(api_client):
    response = api_client.post(
        "/v1/auth/register", {"email": "bob@example.com", "password": "123"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert not User.objects.filter(email="bob@example.com").exists()


def test_it_rejects_a_malformed_body(api_client):
    response = api_client.post(
        "/v1/auth/register", {"email": "not-an-email", "gender": "robot"}
    )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert {"email", "password", "gender"} <= set(detail)


def test_a_wrong_password_gets_no_token(api_client, user):
    response = api_client.post(
        "/v1/auth/token", {"email": user.email, "password": "wrong password"}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "no_active_account"


def test_a_garbage_bearer_token_is_rejected(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")
    response = api_client.get("/v1/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_a_user_edits_their_optional_profile(api_client, user):
    api_client.force_authenticate(user)
    response = api_client.patch(
        "/v1/auth/me", {"gender": "female", "occupation": "pilot"}, format="json"
    )
    assert response.status_code == 200
    user.refresh_from_db()
    assert (user.gender, user.occupation, user.age_band) == ("female", "pilot", "")

    cleared = api_client.patch("/v1/auth/me", {"gender": ""}, format="json")
    assert cleared.json()["gender"] == ""


def test_profile_edits_reject_unknown_choices(api_client, user):
    api_client.force_authenticate(user)
    response = api_client.patch("/v1/auth/me", {"age_band": "ancient"}, format="json")
    assert response.status_code == 400
    assert "age_band" in response.json()["detail"]
