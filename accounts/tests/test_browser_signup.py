"""A person signs up, creates an API key and uses it — in a real Chromium."""

import json
import re
import urllib.request

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(browser_page):
    return browser_page


def test_sign_up_create_a_key_and_call_the_api(page, live_server):
    page.goto(f"{live_server.url}/accounts/signup/")
    page.get_by_label("Email address").fill("grace@example.com")
    page.get_by_label(re.compile(r"^Password\W*$")).fill("a long and happy passphrase")
    page.get_by_label("Password confirmation").fill("a long and happy passphrase")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{live_server.url}/")
    assert "Welcome to APEX" in page.content()

    page.goto(f"{live_server.url}/accounts/")
    page.get_by_label("Key name").fill("laptop")
    page.get_by_role("button", name="Create key").click()
    raw_key = page.get_by_test_id("new-api-key").inner_text().strip()

    request = urllib.request.Request(
        f"{live_server.url}/v1/auth/me", headers={"Authorization": f"Api-Key {raw_key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert json.load(response)["email"] == "grace@example.com"


def test_sign_up_errors_are_shown_next_to_the_fields(page, live_server):
    page.goto(f"{live_server.url}/accounts/signup/")
    page.get_by_label("Email address").fill("grace@example.com")
    page.get_by_label(re.compile(r"^Password\W*$")).fill("short")
    page.get_by_label("Password confirmation").fill("different")
    page.get_by_role("button", name="Sign up").click()
    alerts = page.get_by_role("alert").all_inner_texts()
    assert any("didn’t match" in text for text in alerts)
