import pytest
from django.test import Client

from accounts.models import User
from accounts.tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_signup_page_is_csrf_protected():
    client = Client(enforce_csrf_checks=True)
    page = client.get("/accounts/signup/")
    assert page.status_code == 200
    assert "csrfmiddlewaretoken" in page.content.decode()
    forged = client.post(
        "/accounts/signup/",
        {"email": "a@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert forged.status_code == 403
    assert not User.objects.exists()


def test_signup_creates_an_account_and_logs_in(client):
    response = client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD},
        follow=True,
    )
    assert response.status_code == 200
    assert response.context["user"].email == "new@example.com"
    assert "Welcome to APEX" in response.content.decode()


def test_signup_shows_form_errors(client):
    response = client.post(
        "/accounts/signup/",
        {"email": "bad", "password1": PASSWORD, "password2": "different"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "Enter a valid email address." in html
    assert "didn’t match" in html
    assert 'role="alert"' in html


def test_login_and_logout(client, user):
    response = client.post(
        "/accounts/login/", {"username": user.email, "password": PASSWORD}
    )
    assert response.status_code == 302
    assert client.get("/accounts/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/accounts/").status_code == 302


def test_login_shows_an_error_for_a_wrong_password(client, user):
    response = client.post(
        "/accounts/login/", {"username": user.email, "password": "x"}
    )
    assert response.status_code == 200
    assert (
        "Please enter a correct email address and password" in response.content.decode()
    )


def test_password_change(client, user):
    client.force_login(user)
    response = client.post(
        "/accounts/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "an even longer passphrase",
            "new_password2": "an even longer passphrase",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("an even longer passphrase")


def test_profile_fields_are_optional_and_editable(client, user):
    client.force_login(user)
    response = client.post(
        "/accounts/",
        {
            "save_profile": "1",
            "display_name": "Ada",
            "age_band": "35_44",
            "gender": "",
            "occupation": "engineer",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert (user.display_name, user.age_band, user.gender, user.occupation) == (
        "Ada",
        "35_44",
        "",
        "engineer",
    )


def test_profile_rejects_an_unknown_age_band(client, user):
    client.force_login(user)
    response = client.post("/accounts/", {"save_profile": "1", "age_band": "ancient"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_account_page_needs_login(client):
    response = client.get("/accounts/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
