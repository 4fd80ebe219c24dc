"""Hardening: the production settings pass ``check --deploy`` and send the
security headers; the CSP does not break any page; body sizes are bounded;
no secret is in the repository."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from base64 import b64encode
from hashlib import sha256
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings

from conftest import child_process_env

ROOT = Path(__file__).resolve().parents[2]
HOST = "apex.example.com"


def _production_env(**extra: str) -> dict[str, str]:
    """A realistic production environment: a fresh 67-character key, the test
    PostgreSQL and Redis, one public host name."""
    return child_process_env(
        DJANGO_SETTINGS_MODULE="apex_site.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS=HOST,
        APEX_DB_POOL="false",
        **extra,
    )


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


# ------------------------------------------------------------------ check --deploy
@pytest.mark.django_db
def test_the_production_settings_pass_check_deploy():
    result = _run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        _production_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db
def test_check_deploy_fails_on_a_weakened_setting():
    """The check above can fail: HSTS off is a deploy warning."""
    result = _run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        _production_env(DJANGO_SECURE_HSTS_SECONDS="0"),
    )
    assert result.returncode != 0
    assert "security.W004" in result.stdout + result.stderr


# ------------------------------------------------------------------ headers
_FETCH = """
import json, django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="%(host)s")
out = {}
for path in ["/accounts/login/", "/docs", "/v1/platform/ping"]:
    r = client.get(path, secure=True)
    out[path] = {
        "status": r.status_code,
        "headers": dict(r.headers),
        "body": r.content.decode(errors="replace"),
        "cookies": {k: dict(v) for k, v in r.cookies.items()},
    }
plain = client.get("/accounts/login/")
out["http"] = {"status": plain.status_code, "location": plain.get("Location")}
print(json.dumps(out))
"""


def _directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


@pytest.fixture(scope="module")
def production_pages(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        env = _production_env()
    result = _run([sys.executable, "-c", _FETCH % {"host": HOST}], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_answers_with_the_security_headers(production_pages):
    for path in ("/accounts/login/", "/docs", "/v1/platform/ping"):
        headers = production_pages[path]["headers"]
        assert headers["Strict-Transport-Security"] == (
            "max-age=2592000; includeSubDomains; preload"
        ), path
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert "camera=()" in headers["Permissions-Policy"]
        assert "geolocation=()" in headers["Permissions-Policy"]
        assert "Content-Security-Policy" in headers, path
    login = production_pages["/accounts/login/"]
    assert login["status"] == 200
    assert login["cookies"]["csrftoken"]["secure"] is True
    assert production_pages["http"]["status"] == 301
    assert production_pages["http"]["location"].startswith(f"https://{HOST}/")


def test_the_production_csp_allows_no_inline_script(production_pages):
    login = production_pages["/accounts/login/"]
    csp = _directives(login["headers"]["Content-Security-Policy"])
    assert csp["default-src"] == ["'self'"]
    scripts = csp["script-src"]
    assert "'self'" in scripts
    assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "https:"} & set(scripts)
    nonces = [s for s in scripts if s.startswith("'nonce-")]
    assert len(nonces) == 1
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["connect-src"][0] == "'self'"  # the feed's same-origin websocket
    assert "upgrade-insecure-requests" in csp
    assert "https://checkout.stripe.com" in csp["form-action"]
    # the page's nonce is the header's (htmx stamps it on its <style>)
    nonce = nonces[0][len("'nonce-") : -1]
    assert f'"inlineStyleNonce": "{nonce}"' in login["body"]
    # every response gets a fresh nonce
    docs = _directives(production_pages["/docs"]["headers"]["Content-Security-Policy"])
    assert [s for s in docs["script-src"] if s.startswith("'nonce-")] != nonces


# ---------------------------------------------------------- the CSP vs the pages
class _InlineCode(HTMLParser):
    """Every inline <script>/<style> (with its nonce), every on* handler
    attribute and javascript: URL of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[tuple[str, str | None, str]] = []
        self.handlers: list[str] = []
        self._open: tuple[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, value in attrs:
            if name.startswith("on") or (value or "").strip().startswith("javascript:"):
                self.handlers.append(f"<{tag} {name}>")
        if tag == "style" or (tag == "script" and "src" not in attributes):
            self._open, self._text = (tag, attributes.get("nonce")), []

    def handle_data(self, data):
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag):
        if self._open and tag == self._open[0]:
            self.inline.append((*self._open, "".join(self._text)))
            self._open = None


def _allowed(csp: dict[str, list[str]], directive: str, nonce, text: str) -> bool:
    sources = csp.get(directive) or csp["default-src"]
    digest = b64encode(sha256(text.encode()).digest()).decode()
    return (nonce is not None and f"'nonce-{nonce}'" in sources) or (
        f"'sha256-{digest}'" in sources
    )


def _pages(client, django_user_model):
    from catalog.tests.factories import MovieFactory

    movie = MovieFactory()
    anonymous = [
        "/",
        "/accounts/login/",
        "/accounts/signup/",
        "/catalog/",
        f"/catalog/movies/{movie.id}/",
        "/search/",
        "/pricing/",
        "/docs",
    ]
    for path in anonymous:
        yield path, client.get(path)
    member = django_user_model.objects.create_user("csp@example.com", "x" * 16)
    client.force_login(member)
    for path in ["/", "/accounts/", "/accounts/billing/", "/accounts/password/"]:
        yield f"{path} (member)", client.get(path)
    client.logout()
    staff = django_user_model.objects.create_superuser("root@example.com", "x" * 16)
    client.force_login(staff)
    for path in ["/staff/analytics/", "/staff/analytics/slo/", "/admin/"]:
        yield f"{path} (staff)", client.get(path)


@pytest.mark.django_db
def test_no_page_has_inline_code_the_csp_would_block(client, django_user_model):
    checked = 0
    for path, response in _pages(client, django_user_model):
        assert response.status_code == 200, path
        csp = _directives(response["Content-Security-Policy"])
        parser = _InlineCode()
        parser.feed(response.content.decode())
        assert parser.handlers == [], f"{path}: inline event handlers"
        for tag, nonce, text in parser.inline:
            directive = "script-src" if tag == "script" else "style-src"
            assert _allowed(csp, directive, nonce, text), (
                f"{path}: an inline <{tag}> the policy blocks: {text[:80]!r}"
            )
        checked += 1
    assert checked == 15


@pytest.mark.django_db
def test_the_api_docs_load_their_script_from_this_origin(client):
    page = client.get("/docs")
    scripts = re.findall(r'<script src="([^"]+)"', page.content.decode())
    assert scripts and all(src.startswith("/") for src in scripts)
    script = client.get(scripts[-1])
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.content.decode()


# ------------------------------------------------------------------ body sizes
def _worst_case_batch(n: int = 500) -> bytes:
    """500 events with every optional field at its longest."""
    event = {
        "kind": "rating",
        "movie_id": 2_147_483_647,
        "value": 4.5,
        "occurred_at": "2026-12-05T01:02:03.456789+00:00",
        "idempotency_key": "k" * 100,
        "request_id": "r" * 64,
    }
    return json.dumps({"events": [event] * n}).encode()


def test_the_largest_events_batch_fits_the_limit_with_room():
    assert len(_worst_case_batch()) * 2 < settings.DATA_UPLOAD_MAX_MEMORY_SIZE


@pytest.mark.django_db
def test_a_full_events_batch_is_not_refused_for_its_size(api_client, user):
    api_client.force_authenticate(user)
    body = _worst_case_batch()
    response = api_client.post("/v1/events", body, content_type="application/json")
    assert response.status_code not in (413, 500)


@pytest.mark.django_db
def test_an_oversized_api_body_gets_a_coded_413(api_client, user):
    api_client.force_authenticate(user)
    body = b'{"events": [' + b" " * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + b"]}"
    response = api_client.post("/v1/events", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert (
        response.json()["detail"]["limit_bytes"] == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    )
    # unauthenticated, too: nothing reads the body first
    anonymous = api_client.__class__().post(
        "/v1/auth/token", body, content_type="application/json"
    )
    assert anonymous.status_code == 413


@pytest.mark.django_db
def test_an_oversized_form_gets_413(client):
    response = client.post(
        "/accounts/login/",
        {
            "username": "a@example.com",
            "password": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
        },
    )
    assert response.status_code == 413


def test_nginx_takes_the_same_largest_body():
    template = (ROOT / "deploy/nginx/apex.conf.template").read_text()
    size = re.search(r"client_max_body_size\s+(\d+)([km]?);", template)
    assert size, "nginx's client_max_body_size is set"
    factor = {"": 1, "k": 1024, "m": 1024 * 1024}[size.group(2)]
    assert int(size.group(1)) * factor == settings.DATA_UPLOAD_MAX_MEMORY_SIZE


# ------------------------------------------------------------------ secrets
def test_the_secret_scan_finds_a_planted_secret_by_file_and_line(tmp_path):
    from scripts import secret_scan

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "settings.py").write_text("DEBUG = False\n")
    secret_scan.update_baseline(tmp_path)
    assert secret_scan.new_findings(tmp_path) == []

    # built at run time, so this file holds no key for the real scan to find
    fake_key = "AKIA" + "ZQ3X7RT5LM2PV8KD"
    (tmp_path / "settings.py").write_text(f"DEBUG = False\nAWS_KEY = '{fake_key}'\n")
    assert secret_scan.new_findings(tmp_path) == [("settings.py", 2, "AWS Access Key")]
