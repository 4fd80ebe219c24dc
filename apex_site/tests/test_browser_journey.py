"""A subscriber's whole journey, in a real Chromium, against the production
shape (nginx; granian for HTTP, uvicorn for the websocket; a real Celery
worker; PostgreSQL, Redis, stripe-mock):

sign up → the cold-start page → rate five movies (the open home tab redraws
live) → keyword and semantic search → a movie page and its rows → an API key,
used over real HTTP → pricing → Checkout (the session created at stripe-mock;
Checkout's own page, on the internet, is a stand-in answered by Playwright) →
a Stripe-signed webhook → the billing page shows the plan, and its usage bar
moves after more API calls.

Every step leaves a screenshot under ``APEX_JOURNEY_ARTIFACTS_DIR`` (default
``var/test-artifacts/journey/``, git-ignored), and the main pages pass
axe-core (axe-playwright-python's ``axe.min.js``) with no "serious" or
"critical" violation; lesser ones are written beside the screenshots.

The semantic search is the real one: the MiniLM index is built from this
test's catalog (``manage.py build_search_index``) and the web process loads
the model on its first semantic query.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import urllib.request
from email.message import Message
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from apex_site.browser import AXE_BLOCKING_IMPACTS, axe_summary, axe_violations
from billing.models import BillingAccount
from billing.tests import conftest as billing_fixtures
from billing.tests.conftest import (
    TEST_KEY,
    event_body,
    sign,
    stripe_checkout_stand_in,
    subscription,
)
from catalog import services as catalog_services
from catalog.models import Credit
from catalog.tests.factories import (
    CreditFactory,
    GenreFactory,
    MovieFactory,
    PersonFactory,
)
from catalog.tests.test_search import SEMANTIC_CATALOG

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

# billing's fixtures (Stripe at stripe-mock, synced plans, our webhook endpoint)
stripe_api = billing_fixtures.stripe_api
synced_plans = billing_fixtures.synced_plans
webhook_endpoint = billing_fixtures.webhook_endpoint

ROOT = Path(__file__).resolve().parents[2]
EMAIL, PASSWORD = "journey@example.com", "a long and happy passphrase"


def artifacts_dir() -> Path:
    path = Path(
        os.environ.get("APEX_JOURNEY_ARTIFACTS_DIR")
        or ROOT / "var" / "test-artifacts" / "journey"
    )
    path.mkdir(parents=True, exist_ok=True)
    for old in [*path.glob("*.png"), *path.glob("axe-*.json")]:
        old.unlink()
    return path


class Journey:
    """Screenshots numbered in the order taken, and the axe audit of a page."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.shots = 0
        self.audited: dict[str, list[dict]] = {}

    def shot(self, page, name: str) -> None:
        self.shots += 1
        page.screenshot(
            path=self.folder / f"{self.shots:02d}-{name}.png", full_page=True
        )

    def audit(self, page, name: str) -> None:
        found = axe_violations(page)
        self.audited[name] = found
        (self.folder / f"axe-{name}.json").write_text(
            json.dumps(
                [{k: v[k] for k in ("id", "impact", "help", "nodes")} for v in found],
                indent=1,
                default=str,
            )
        )

    def blocking(self) -> str:
        """The serious and critical violations of every page audited."""
        return "\n".join(
            f"{name}: {axe_summary(blocking)}"
            for name, found in self.audited.items()
            if (blocking := [v for v in found if v["impact"] in AXE_BLOCKING_IMPACTS])
        )


def api_get(base: str, path: str, key: str) -> tuple[int, Message, dict]:
    request = urllib.request.Request(
        f"{base}{path}", headers={"Authorization": f"Api-Key {key}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers, json.load(response)


@pytest.fixture
def catalog(settings, tmp_path):
    """A small catalog whose right answers are known: the semantic-search
    catalog, popularity by rating count (the cold-start order), two films by
    one director (the movie page's director row), both search indexes."""
    genres = {}
    movies = {}
    for rank, (title, year, names, overview) in enumerate(SEMANTIC_CATALOG):
        for name in names:
            genres.setdefault(name, GenreFactory(name=name))
        movies[title] = MovieFactory(
            title=title,
            year=year,
            overview=overview,
            rating_count=200 - 10 * rank,
            rating_mean=4.0,
            genres=[genres[n] for n in names],
        )
    movies["Aliens"] = MovieFactory(
        title="Aliens",
        year=1986,
        overview="Marines return to the moon where a deadly creature was found.",
        rating_count=20,
        genres=[GenreFactory(name="Action"), genres["Sci-Fi"]],
    )
    cameron = PersonFactory(name="James Cameron")
    for title in ("Titanic", "Aliens"):
        CreditFactory(movie=movies[title], person=cameron, role=Credit.Role.DIRECTOR)
    catalog_services.movie_search_vectors_refresh()
    # The web process (a child) reads the same folder: see journey_env.
    settings.APEX_SEARCH_INDEX_DIR = tmp_path / "search"
    call_command("build_search_index", stdout=io.StringIO())
    return movies


@pytest.fixture
def journey_env(monkeypatch, tmp_path, stripe_api):
    """What the server processes (children started by ``production_server``,
    which must come after this fixture) need beyond the test database:
    Stripe at stripe-mock, and the search index built by ``catalog``."""
    monkeypatch.setenv("STRIPE_SECRET_KEY", TEST_KEY)
    monkeypatch.setenv("STRIPE_API_HOST", stripe_api)
    monkeypatch.setenv("APEX_SEARCH_INDEX_DIR", str(tmp_path / "search"))


def test_a_subscriber_journey_from_sign_up_to_a_paid_plan(
    journey_env,
    catalog,
    synced_plans,
    webhook_endpoint,
    production_server,
    browser_page,
):
    started = time.monotonic()
    base = f"http://{production_server}"
    journey = Journey(artifacts_dir())
    page = browser_page
    checkout_requests = stripe_checkout_stand_in(page)
    # every tab's script errors and Content-Security-Policy refusals
    script_errors: list[str] = []
    page.context.on("weberror", lambda e: script_errors.append(str(e.error)))
    page.context.on(
        "console",
        lambda m: "Content Security Policy" in m.text and script_errors.append(m.text),
    )
    # (no movie has a TMDB poster: the site draws them, nothing leaves loopback)

    # --- anonymous: the landing page, sign up and log in
    page.goto(f"{base}/")
    expect(page.get_by_text("Create a free account")).to_be_visible()
    journey.audit(page, "landing")
    journey.shot(page, "landing")
    page.goto(f"{base}/accounts/login/")
    journey.audit(page, "login")
    journey.shot(page, "login")
    page.goto(f"{base}/accounts/signup/")
    journey.audit(page, "signup")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label(re.compile(r"^Password\W*$")).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    journey.shot(page, "signup")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{base}/")

    # --- the cold-start page: popular picks spread over genres, a prompt to rate
    expect(page.get_by_text("Welcome to APEX")).to_be_visible()
    page.wait_for_selector('[data-testid="feed"][data-live-state="open"]')
    cold_row = page.locator('[data-row="cold_start"]')
    expect(cold_row.get_by_test_id("rate-prompt")).to_be_visible()
    picks = cold_row.locator(".movie-card").evaluate_all(
        "cards => cards.map(c => [Number(c.dataset.movieId), "
        "c.querySelector('.movie-title').innerText])"
    )
    assert len(picks) >= 5
    journey.audit(page, "cold-start")
    journey.shot(page, "cold-start")

    # --- rate five of the picks in another tab; the home tab redraws live
    other = page.context.new_page()
    for movie_id, _title in picks[:5]:
        other.goto(f"{base}/catalog/movies/{movie_id}/")
        other.get_by_label("Your rating").select_option("4.5")
        other.get_by_role("button", name="Rate").click()
        expect(other.get_by_test_id("my-rating")).to_have_text("4.5 ★")
    # refreshes coalesce (at most one waits per user): the last push is about
    # the last rating and leaves out all five rated movies
    expect(page.get_by_test_id("live-note")).to_have_text(
        f"Updated after you rated {picks[4][1]}", timeout=30_000
    )
    assert int(page.get_by_test_id("feed").get_attribute("data-updates")) >= 1
    live_ids = page.locator('[data-row="for_you"] .movie-card').evaluate_all(
        "cards => cards.map(c => Number(c.dataset.movieId))"
    )
    assert live_ids and not {i for i, _ in picks[:5]} & set(live_ids)
    journey.shot(page, "feed-live-update")
    other.close()

    page.reload()
    rows = page.locator("[data-row]").evaluate_all("rs => rs.map(r => r.dataset.row)")
    assert "for_you" in rows and "cold_start" not in rows
    assert page.get_by_test_id("rate-prompt").count() == 0
    journey.audit(page, "feed")
    journey.shot(page, "feed")

    # --- keyword search as you type, then semantic search in plain language
    page.get_by_role("navigation").get_by_role("link", name="Search").click()
    results = page.locator("#search-results li")
    page.get_by_role("searchbox").fill("godfather")
    expect(results.first).to_contain_text("The Godfather")
    assert results.count() == 1
    journey.audit(page, "search-keyword")
    journey.shot(page, "search-keyword")
    page.get_by_label("Semantic").check()
    page.get_by_role("searchbox").fill("romance on a sinking ship")
    # the web process loads the sentence model on this first semantic query
    expect(results.first).to_contain_text("Titanic", timeout=60_000)
    journey.audit(page, "search-semantic")
    journey.shot(page, "search-semantic")

    # --- a movie page and its rows (loaded by htmx after the page)
    results.first.get_by_role("link", name="Titanic").click()
    page.wait_for_url(f"{base}/catalog/movies/{catalog['Titanic'].pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Titanic")
    rows = page.get_by_test_id("movie-rows")
    expect(rows.locator('[data-row="similar"] .movie-card').first).to_be_visible()
    director_row = rows.locator('[data-row="director"]')
    expect(director_row.get_by_role("heading")).to_have_text("From the same director")
    expect(director_row.locator(".movie-title")).to_have_text(["Aliens"])
    journey.audit(page, "movie")
    journey.shot(page, "movie")

    # --- an API key, used from outside the browser over real HTTP
    page.get_by_role("link", name=EMAIL).click()
    page.get_by_label("Key name").fill("journey laptop")
    page.get_by_role("button", name="Create key").click()
    raw_key = page.get_by_test_id("new-api-key").inner_text().strip()
    journey.audit(page, "account")
    journey.shot(page, "account-api-key")
    status, _, me = api_get(base, "/v1/auth/me", raw_key)
    assert (status, me["email"]) == (200, EMAIL)
    # two metered calls (they count against the quota): keyword and semantic
    for path, title in (
        ("/v1/search?q=heat", "Heat"),
        ("/v1/search/ai?q=a+shark+terrorises+a+beach+town", "Jaws"),
    ):
        status, headers, found = api_get(base, path, raw_key)
        assert status == 200 and found["results"][0]["movie"]["title"] == title
        assert headers.get("X-RateLimit-Limit") == "1000"  # the Free plan's quota

    # --- pricing → Checkout: our server creates the session at stripe-mock
    page.get_by_role("navigation").get_by_role("link", name="Pricing").click()
    expect(page.get_by_test_id("plan-free")).to_contain_text("Your plan")
    journey.audit(page, "pricing")
    journey.shot(page, "pricing")
    page.get_by_role("button", name="Choose Pro").click()
    page.wait_for_url(re.compile(r"^https://checkout\.stripe\.com/"))
    assert len(checkout_requests) == 1
    expect(page.get_by_role("heading")).to_have_text("Pay for APEX Pro")
    journey.shot(page, "stripe-checkout-stand-in")
    account = BillingAccount.objects.get(user__email=EMAIL)
    assert account.stripe_customer_id.startswith("cus_")  # made at stripe-mock

    # --- back from Checkout: nothing changes until Stripe's signed webhook
    page.goto(f"{base}/accounts/billing/?checkout=success")
    # (a locator, not wait_for_function: the CSP forbids the eval it polls with)
    expect(page.locator("body")).to_have_attribute("data-live-state", "open")
    expect(page.get_by_test_id("current-plan")).to_have_text("Free")
    expect(page.locator("#plan-status")).to_contain_text("2 of 1,000 calls used")
    journey.audit(page, "billing")
    journey.shot(page, "billing-free")
    payload = json.dumps(
        event_body(
            "customer.subscription.created",
            subscription(customer=account.stripe_customer_id),
        )
    )
    webhook = urllib.request.Request(
        f"{base}/stripe/webhook/{webhook_endpoint.djstripe_uuid}/",
        data=payload.encode(),
        headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload)},
        method="POST",
    )
    with urllib.request.urlopen(webhook, timeout=30) as response:
        assert response.status == 200
    # the open tab hears of it over the websocket (or its 5 s poll)
    expect(page.get_by_test_id("current-plan")).to_have_text("Pro", timeout=15_000)
    bar = page.locator("#usage-bar")
    expect(bar).to_have_attribute("max", "100000")
    expect(bar).to_have_attribute("value", "2")
    journey.shot(page, "billing-pro")

    # --- more API calls: the usage bar moves (the panel refreshes itself)
    for q in ("fargo", "babe", "scream"):
        assert api_get(base, f"/v1/search?q={q}", raw_key)[0] == 200
    expect(bar).to_have_attribute("value", "5", timeout=15_000)
    expect(page.locator("#plan-status")).to_contain_text(
        "5 of 100,000 calls used this month"
    )
    journey.shot(page, "billing-usage-moved")

    assert set(journey.audited) == {
        "landing", "login", "signup", "cold-start", "feed", "search-keyword",
        "search-semantic", "movie", "account", "pricing", "billing",
    }  # fmt: skip
    assert not journey.blocking(), journey.blocking()  # checked at the end, for all
    assert not script_errors
    (journey.folder / "timing.txt").write_text(
        f"journey (test body) {time.monotonic() - started:.1f}s\n"
    )
