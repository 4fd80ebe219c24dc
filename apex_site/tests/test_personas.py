"""Personas: alice and bob (subscribers) and a staff member, against every
user-scoped URL, page and websocket group (issue 18).

Every route the URL resolver knows (``apex_site/urls.py`` and each app's
``urls.py``; ``admin/`` as one entry) and every websocket route is
classified in ``INVENTORY`` / ``WEBSOCKET_INVENTORY`` below, and every
operation of the OpenAPI schema must name a classified route:
``test_every_route_is_classified`` fails when a URL is added without a
class, and ``test_every_scoped_route_has_persona_pairs`` when a scoped one
has no persona test. The classes:

============  ===============================================================
class         meaning, and what the tests hold
============  ===============================================================
public        nobody's data (the catalog, search, plans, health, the schema)
auth          credentials in, a session or token out (the hardening tests
              cover throttling and lock-out); logout and the password change
              act on the caller only (tested here)
own           the caller's data, the user implied by the credentials: bob
              neither reads nor changes alice's (bespoke tests)
own-or-staff  a user id in the path or query: one's own, or anybody's with a
              staff account; bob gets 403 for alice's
staff         staff only (or loopback for ``/metrics``, the Business plan
              for the analytics API): bob is refused, staff is served
signed        the Stripe webhook: no session counts, only the signature
============  ===============================================================

A *persona pair* is one (route, action) with a persona check on it — "bob
cannot read alice's features", "staff can". ``PAIRS`` collects them (the
parametrised cases at import, the bespoke tests through ``@pairs``), so
their number is ``len(PAIRS)``; ``docs/_drafts/issue-18-personas-benchmarks.md``
records it.

Requests go through Django's test clients (sessions for pages,
``force_authenticate`` for the API; one JWT and one API key check that the
real credentials resolve to their own user), the live feed socket through
the real ASGI application (session cookie, ``AllowedHostsOriginValidator``,
the Redis channel layer), billing through stripe-mock. API keys, ratings,
the watchlist and invoices have no ``/v1`` endpoint of their own (the pages
are their only surface, and ``/v1/events`` writes ratings and the watchlist).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import ApiKey
from accounts.services import api_key_create
from accounts.tests.factories import PASSWORD, UserFactory
from billing.models import BillingAccount, DailyUsage, Invoice
from billing.tests.conftest import (  # noqa: F401 - fixtures used below
    stripe_api,
    synced_plans,
    webhook_endpoint,
)
from catalog.tests.factories import GenreFactory, MovieFactory
from experiments import selectors as experiment_selectors
from experiments import services as experiment_services
from experiments.models import Experiment, Impression
from learning import selectors as learning_selectors
from learning.models import Interaction

pytestmark = pytest.mark.django_db

PUBLIC, AUTH, OWN, OWN_OR_STAFF, STAFF, SIGNED = (
    "public", "auth", "own", "own-or-staff", "staff", "signed",
)  # fmt: skip

# route (as the resolver spells it) -> class. ``admin/`` stands for Django's
# admin site (every model page under it is staff only).
INVENTORY: dict[str, str] = {
    # pages
    "": OWN,  # the landing page, or the signed-in user's feed rows
    "accounts/signup/": AUTH,
    "accounts/login/": AUTH,
    "accounts/logout/": AUTH,
    "accounts/password/": AUTH,
    "accounts/": OWN,  # profile, API keys
    "accounts/api-keys/": OWN,
    "accounts/api-keys/<int:key_id>/revoke/": OWN,
    "catalog/": PUBLIC,
    "catalog/movies/<int:movie_id>/": OWN,  # shows my rating and watchlist state
    "catalog/movies/<int:movie_id>/poster.svg": PUBLIC,
    "catalog/movies/<int:movie_id>/rate/": OWN,
    "catalog/movies/<int:movie_id>/watchlist/": OWN,
    "search/": PUBLIC,
    "search/results/": PUBLIC,
    "recommendations/movies/<int:movie_id>/rows/": PUBLIC,  # a movie's rows
    "pricing/": OWN,  # marks the caller's plan
    "accounts/billing/": OWN,  # plan, usage, invoices
    "accounts/billing/status/": OWN,
    "billing/checkout/<str:plan>/": OWN,
    "billing/portal/": OWN,
    "experiments/": STAFF,
    "experiments/<slug:key>/results": STAFF,
    "metrics": STAFF,
    "staff/analytics/": STAFF,
    "staff/analytics/fairness/": STAFF,
    "staff/analytics/slo/": STAFF,
    "staff/analytics/privacy/": STAFF,
    "staff/analytics/models/": STAFF,
    "staff/analytics/operations/": STAFF,
    "stripe/webhook/<uuid:uuid>/": SIGNED,
    "admin/": STAFF,
    "docs": PUBLIC,
    # /v1
    "v1/platform/ping": OWN,  # echoes the caller's id
    "v1/platform/status": PUBLIC,
    "v1/platform/readiness": PUBLIC,
    "v1/auth/register": AUTH,
    "v1/auth/token": AUTH,
    "v1/auth/token/refresh": AUTH,
    "v1/auth/logout": AUTH,  # revokes the refresh token sent
    "v1/auth/me": OWN,
    "v1/catalog/movies": PUBLIC,
    "v1/catalog/movies/<int:movie_id>": PUBLIC,
    "v1/search": PUBLIC,
    "v1/search/ai": PUBLIC,
    "v1/artifacts/health": PUBLIC,
    "v1/artifacts/reload": STAFF,
    "v1/recommendations/user/<int:user_id>": OWN_OR_STAFF,
    "v1/recommendations/id/<int:movie_id>": PUBLIC,
    "v1/recommendations/id/<int:movie_id>/enriched": PUBLIC,
    "v1/recommendations/knowledge-graph/<int:movie_id>": PUBLIC,
    "v1/admin/reload-ensemble-weights": STAFF,
    "v1/events": OWN,  # the caller's events; request ids join own slates only
    "v1/events/features": OWN_OR_STAFF,  # ?user_id=
    "v1/billing/plans": PUBLIC,
    "v1/billing/checkout": OWN,
    "v1/billing/portal": OWN,
    "v1/billing/usage": OWN,
    "v1/events/recommendation-analytics": STAFF,  # or the Business plan
    "v1/evaluation/offline-metrics": STAFF,  # or the Business plan
    "v1/platform/slo": STAFF,
    "v1/schema": PUBLIC,
}

# websocket route -> (class, group). The group is the server's choice.
WEBSOCKET_INVENTORY: dict[str, str] = {"ws/feed/": OWN}


# ------------------------------------------------------------------ pairs
@dataclass(frozen=True)
class Pair:
    route: str
    action: str  # what is tried, e.g. "bob reads alice's"


PAIRS: list[Pair] = []


def pairs(*items: tuple[str, str]) -> Callable:
    """Register the persona pairs a bespoke test checks."""
    for route, action in items:
        PAIRS.append(Pair(route, action))
    return lambda test: test


# ------------------------------------------------------------------ personas
@pytest.fixture
def alice():
    return UserFactory(email="alice@example.com", display_name="Alice Liddell")


@pytest.fixture
def bob():
    return UserFactory(email="bob@example.com", display_name="Bob Builder")


@pytest.fixture
def staff():
    return UserFactory(email="staff@example.com", is_staff=True)


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _page(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def movies():
    drama = GenreFactory(name="Drama")
    return [MovieFactory(genres=[drama]) for _ in range(6)]


@pytest.fixture
def alice_data(alice, movies, django_capture_on_commit_callbacks):
    """Alice's history (a rating, a watchlist entry, a click), an API key, a
    Business plan, an invoice and a month's usage."""
    with django_capture_on_commit_callbacks(execute=True):
        response = _api(alice).post(
            "/v1/events",
            {"events": [
                {"kind": "rating", "movie_id": movies[0].pk, "value": 4.5,
                 "idempotency_key": "alice-1"},
                {"kind": "watchlist", "movie_id": movies[0].pk, "value": 1,
                 "idempotency_key": "alice-2"},
                {"kind": "click", "movie_id": movies[1].pk,
                 "idempotency_key": "alice-3"},
            ]},
            format="json",
        )  # fmt: skip
    assert response.status_code == 202, response.content
    key, raw = api_key_create(user=alice, name="alice-laptop-key")
    BillingAccount.objects.create(
        user=alice, plan="business", status="active", stripe_customer_id="cus_alice"
    )
    Invoice.objects.create(
        user=alice, stripe_invoice_id="in_alice_1", number="INV-ALICE-0001",
        status="paid", amount_due=4900, amount_paid=4900,
        created=datetime.now(UTC),
    )  # fmt: skip
    DailyUsage.objects.create(user=alice, day=date.today(), calls=7777)
    return {"key": key, "raw_key": raw, "movie": movies[0]}


# ------------------------------------------------------------------ inventory
def _routes(patterns, prefix: str = "") -> list[str]:
    out: list[str] = []
    for p in patterns:
        route = prefix + str(p.pattern)
        if route.startswith("admin/"):
            out.append("admin/")
        elif isinstance(p, URLResolver):
            out.extend(_routes(p.url_patterns, route))
        elif isinstance(p, URLPattern):
            out.append(route)
    return out


def test_every_route_is_classified():
    routes = set(_routes(get_resolver().url_patterns))
    assert routes - INVENTORY.keys() == set(), "classify the new routes above"
    assert INVENTORY.keys() - routes == set(), "drop the routes that are gone"


def test_every_websocket_route_is_classified():
    from apex_site.routing import websocket_urlpatterns

    assert {str(p.pattern) for p in websocket_urlpatterns} == WEBSOCKET_INVENTORY.keys()


def test_every_schema_operation_names_a_classified_route():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    documented = {
        "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route) for route in INVENTORY
    }
    assert set(schema["paths"]) - documented == set()


def test_every_scoped_route_has_persona_pairs():
    scoped = {r for r, kind in INVENTORY.items() if kind in (OWN, OWN_OR_STAFF, STAFF)}
    scoped |= {r for r, kind in WEBSOCKET_INVENTORY.items() if kind != PUBLIC}
    covered = {p.route for p in PAIRS}
    assert scoped - covered == set(), "add persona tests for these routes"
    assert covered - INVENTORY.keys() - WEBSOCKET_INVENTORY.keys() == set()


# ------------------------------------------------------------------ staff only
@dataclass(frozen=True)
class StaffCase:
    route: str
    method: str
    url: str
    served: tuple[int, ...] = (200,)  # what staff gets
    api: bool = False


STAFF_CASES = [
    StaffCase("experiments/", "get", "/experiments/"),
    StaffCase("experiments/<slug:key>/results", "get", "/experiments/persona/results"),
    StaffCase("metrics", "get", "/metrics"),
    StaffCase("staff/analytics/", "get", "/staff/analytics/"),
    StaffCase("staff/analytics/fairness/", "get", "/staff/analytics/fairness/"),
    StaffCase("staff/analytics/slo/", "get", "/staff/analytics/slo/"),
    StaffCase("staff/analytics/privacy/", "get", "/staff/analytics/privacy/"),
    StaffCase("staff/analytics/models/", "get", "/staff/analytics/models/"),
    StaffCase("staff/analytics/operations/", "get", "/staff/analytics/operations/"),
    StaffCase("admin/", "get", "/admin/"),
    # A version that does not exist: staff passes the permission check and
    # gets the 404 (503 where no artifacts folder exists), nothing is loaded.
    StaffCase("v1/artifacts/reload", "post", "/v1/artifacts/reload",
              (404, 503), api=True),
    StaffCase("v1/admin/reload-ensemble-weights", "post",
              "/v1/admin/reload-ensemble-weights", (200, 409, 503), api=True),
    StaffCase("v1/events/recommendation-analytics", "get",
              "/v1/events/recommendation-analytics", api=True),
    # 404: no artifact has been evaluated in the test database
    StaffCase("v1/evaluation/offline-metrics", "get",
              "/v1/evaluation/offline-metrics", (200, 404), api=True),
    StaffCase("v1/platform/slo", "get", "/v1/platform/slo", api=True),
]  # fmt: skip
for _case in STAFF_CASES:
    PAIRS.append(Pair(_case.route, f"bob is refused {_case.method} {_case.url}"))
    PAIRS.append(Pair(_case.route, f"staff is served {_case.method} {_case.url}"))


def _call(client, case: StaffCase):
    body = {"version": "persona-none"} if "artifacts/reload" in case.url else {}
    kwargs = {"REMOTE_ADDR": "203.0.113.7"}  # not loopback: /metrics asks for staff
    if case.method == "post":
        return client.post(case.url, body, format="json", **kwargs)
    return client.get(case.url, **kwargs)


@pytest.mark.parametrize("case", STAFF_CASES, ids=lambda c: f"{c.method} {c.url}")
def test_bob_is_refused_and_staff_is_served(case, bob, staff):
    Experiment.objects.create(key="persona", name="Persona experiment")
    client_for = _api if case.api else _page
    refused = _call(client_for(bob), case)
    if refused.status_code == 302:  # staff_member_required: to the admin login
        assert "/admin/login/" in refused["Location"]
    else:
        assert refused.status_code == 403, refused.content
    served = _call(client_for(staff), case)
    assert served.status_code in case.served, served.content[:500]


@pairs(
    ("admin/", "bob is refused the admin's user and invoice lists"),
    ("admin/", "staff needs the model permission (Django's), a superuser has it"),
)
def test_admin_model_pages_follow_djangos_permissions(alice_data, bob, staff):
    superuser = UserFactory(email="root@example.com", is_staff=True, is_superuser=True)
    for url in ("/admin/accounts/user/", "/admin/billing/invoice/"):
        refused = _page(bob).get(url)
        assert refused.status_code == 302 and "/admin/login/" in refused["Location"]
        assert _page(staff).get(url).status_code == 403
        served = _page(superuser).get(url)
        assert served.status_code == 200
        assert b"alice@example.com" in served.content or b"INV-ALICE" in served.content


@pairs(
    ("v1/events/recommendation-analytics", "alice (Business plan) is served"),
    ("v1/evaluation/offline-metrics", "alice (Business plan) is served"),
)
def test_the_analytics_api_follows_the_plan_not_the_persona(alice, bob, alice_data):
    for url, served in (
        ("/v1/events/recommendation-analytics", (200,)),
        ("/v1/evaluation/offline-metrics", (200, 404)),
    ):
        assert _api(bob).get(url).json()["code"] == "analytics_not_entitled"
        assert _api(alice).get(url).status_code in served


# ------------------------------------------------------------------ own or staff
@pairs(
    ("v1/recommendations/user/<int:user_id>", "bob reads alice's"),
    ("v1/recommendations/user/<int:user_id>", "bob (JWT) reads alice's"),
    ("v1/recommendations/user/<int:user_id>", "staff reads alice's"),
    ("v1/recommendations/user/<int:user_id>", "alice reads her own"),
)
def test_recommendations_are_ones_own_or_staffs(alice, bob, staff, movies):
    url = f"/v1/recommendations/user/{alice.pk}?n=3"
    refused = _api(bob).get(url)
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert "items" not in refused.json()
    jwt = APIClient()
    jwt.credentials(
        HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(bob).access_token}"
    )
    assert jwt.get(url).status_code == 403
    assert jwt.get(f"/v1/recommendations/user/{bob.pk}?n=3").status_code == 200
    for reader in (staff, alice):
        response = _api(reader).get(url)
        assert response.status_code == 200
        assert response.json()["user_id"] == alice.pk


@pairs(
    ("v1/events/features", "bob reads alice's (?user_id)"),
    ("v1/events/features", "bob's own holds none of alice's events"),
    ("v1/events/features", "staff reads alice's"),
)
def test_features_are_ones_own_or_staffs(alice, bob, staff, alice_data):
    url = f"/v1/events/features?user_id={alice.pk}"
    refused = _api(bob).get(url)
    assert refused.status_code == 403 and "recent" not in refused.json()
    own = _api(bob).get("/v1/events/features").json()
    assert own["user_id"] == bob.pk and own["recent"] == []
    body = _api(staff).get(url).json()
    assert body["user_id"] == alice.pk
    assert len(body["recent"]) == 3  # the online learner applied alice's events


# ------------------------------------------------------------------ events
@pairs(
    ("v1/events", "bob's events are recorded as bob's"),
    ("v1/events", "bob reuses alice's idempotency key"),
)
def test_events_are_the_callers_and_keys_are_per_user(
    alice, bob, alice_data, movies, django_capture_on_commit_callbacks
):
    alice_rows = list(Interaction.objects.filter(user=alice).values_list("pk", "value"))
    with django_capture_on_commit_callbacks(execute=True):
        response = _api(bob).post(
            "/v1/events",
            {"kind": "rating", "movie_id": movies[0].pk, "value": 1.0,
             "idempotency_key": "alice-1"},
            format="json",
        )  # fmt: skip
    assert response.status_code == 202
    (event,) = response.json()["events"]
    assert event["created"] is True  # not alice's event answered back
    assert Interaction.objects.get(pk=event["id"]).user_id == bob.pk
    assert (
        list(Interaction.objects.filter(user=alice).values_list("pk", "value"))
        == alice_rows
    )
    assert (
        learning_selectors.user_rating(user_id=alice.pk, movie_id=movies[0].pk) == 4.5
    )


@pairs(
    ("v1/events", "bob's event names alice's request_id: not joined to her slate"),
    ("v1/events", "alice's event names her request_id: joined"),
    ("catalog/movies/<int:movie_id>/", "bob opens alice's shared link (?rid=)"),
)
def test_a_request_id_rewards_only_its_own_users_slate(
    alice, bob, movies, django_capture_on_commit_callbacks
):
    served = _api(alice).get(f"/v1/recommendations/user/{alice.pk}?n=4").json()
    request_id = served["request_id"]
    shown = [item["id"] for item in served["items"]]
    assert len(shown) >= 3
    experiment_services.impressions_flush()
    row = Impression.objects.get(request_id=request_id)

    def click(user, movie_id):
        with django_capture_on_commit_callbacks(execute=True):
            response = _api(user).post(
                "/v1/events",
                {"kind": "click", "movie_id": movie_id, "request_id": request_id},
                format="json",
            )
        assert response.status_code == 202

    click(bob, shown[0])
    # a movie link of alice's list, shared: opening it is bob's click
    _page(bob).get(f"/catalog/movies/{shown[2]}/?rid={request_id}")
    assert Interaction.objects.filter(user=bob, request_id=request_id).count() == 2
    (slate,) = experiment_selectors.slates_with_rewards([row])
    assert slate.clicks == [0] * len(shown), "bob's click rewarded alice's slate"
    click(alice, shown[1])
    (slate,) = experiment_selectors.slates_with_rewards([row])
    assert slate.clicks == [0, 1] + [0] * (len(shown) - 2)


# ------------------------------------------------------------------ identity
@pairs(
    ("v1/platform/ping", "alice's API key answers as alice, bob's JWT as bob"),
    ("v1/auth/me", "bob reads his own account only"),
    ("v1/auth/me", "bob's profile edit changes bob only"),
)
def test_credentials_resolve_to_their_own_user(alice, bob, alice_data):
    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Api-Key {alice_data['raw_key']}")
    assert keyed.get("/v1/platform/ping").json()["user_id"] == alice.pk
    jwt = APIClient()
    jwt.credentials(
        HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(bob).access_token}"
    )
    assert jwt.get("/v1/platform/ping").json()["user_id"] == bob.pk

    me = _api(bob).get("/v1/auth/me").json()
    assert me["email"] == "bob@example.com" and "alice" not in str(me).lower()
    response = _api(bob).patch(
        "/v1/auth/me", {"display_name": "Mallory", "id": alice.pk}, format="json"
    )
    assert response.status_code == 200
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert (alice.display_name, bob.display_name) == ("Alice Liddell", "Mallory")


# ------------------------------------------------------------------ account pages
@pairs(
    ("accounts/", "bob's account page shows none of alice's keys or profile"),
    ("accounts/", "bob's profile form changes bob only"),
    ("accounts/api-keys/", "bob's new key is bob's"),
    ("accounts/api-keys/<int:key_id>/revoke/", "bob revokes alice's key"),
    ("", "bob's home page shows nothing of alice's"),
)
def test_account_pages_and_api_keys(alice, bob, alice_data):
    page = _page(bob)
    body = page.get("/accounts/").content.decode()
    assert "alice-laptop-key" not in body and "Alice Liddell" not in body
    assert "alice-laptop-key" in _page(alice).get("/accounts/").content.decode()
    home = page.get("/").content.decode()
    assert "Alice Liddell" not in home and "alice@example.com" not in home

    page.post("/accounts/", {"save_profile": "1", "display_name": "Bobby",
                             "user": alice.pk, "id": alice.pk})  # fmt: skip
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert (alice.display_name, bob.display_name) == ("Alice Liddell", "Bobby")

    assert (
        page.post(
            "/accounts/api-keys/", {"name": "bob-key", "scopes": ApiKey.Scope.values}
        ).status_code
        == 302
    )
    assert list(
        ApiKey.objects.filter(name="bob-key").values_list("user", flat=True)
    ) == [bob.pk]
    assert ApiKey.objects.filter(user=alice).count() == 1

    alice_key = alice_data["key"]
    page.post(f"/accounts/api-keys/{alice_key.pk}/revoke/")
    alice_key.refresh_from_db()
    assert alice_key.revoked_at is None
    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Api-Key {alice_data['raw_key']}")
    assert keyed.get("/v1/platform/ping").json()["user_id"] == alice.pk


@pairs(
    ("accounts/password/", "bob's password change leaves alice's password"),
    ("accounts/logout/", "bob's logout leaves alice signed in"),
)
def test_password_change_and_logout_act_on_the_caller(alice, bob):
    page, alice_page = _page(bob), _page(alice)
    response = page.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": "a new Bob passphrase 42",
         "new_password2": "a new Bob passphrase 42"},
    )  # fmt: skip
    assert response.status_code == 302
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert alice.check_password(PASSWORD) and not bob.check_password(PASSWORD)
    page.post("/accounts/logout/")
    assert page.get("/accounts/").status_code == 302  # bob is out
    assert alice_page.get("/accounts/").status_code == 200  # alice is not


# ------------------------------------------------------------------ history
@pairs(
    ("catalog/movies/<int:movie_id>/", "bob's movie page shows none of alice's rating"),
    ("catalog/movies/<int:movie_id>/rate/", "bob's rating leaves alice's"),
    ("catalog/movies/<int:movie_id>/watchlist/", "bob's removal leaves alice's list"),
)
def test_ratings_and_watchlist_are_per_user(alice, bob, alice_data):
    movie = alice_data["movie"]
    page = _page(bob)
    context = page.get(f"/catalog/movies/{movie.pk}/").context
    assert context["my_rating"] is None and context["on_watchlist"] is False
    mine = _page(alice).get(f"/catalog/movies/{movie.pk}/").context
    assert mine["my_rating"] == 4.5 and mine["on_watchlist"] is True

    page.post(f"/catalog/movies/{movie.pk}/rate/",
              {"stars": "1", "idempotency_key": "x1"})  # fmt: skip
    page.post(f"/catalog/movies/{movie.pk}/watchlist/",
              {"on": "", "idempotency_key": "x2"})  # fmt: skip
    assert learning_selectors.user_rating(user_id=bob.pk, movie_id=movie.pk) == 1.0
    assert learning_selectors.user_rating(user_id=alice.pk, movie_id=movie.pk) == 4.5
    assert learning_selectors.user_has_on_watchlist(user_id=alice.pk, movie_id=movie.pk)


# ------------------------------------------------------------------ billing
def _section(html: str, plan: str) -> str:
    start = html.index(f'data-testid="plan-{plan}"')
    return html[start : html.index("</section>", start)]


@pairs(
    ("accounts/billing/", "bob's billing page shows none of alice's invoices/usage"),
    ("accounts/billing/status/", "bob's plan panel is his own"),
    ("pricing/", "bob's pricing page marks his plan, not alice's"),
    ("v1/billing/usage", "bob's usage is his own"),
)
def test_billing_reads_are_per_user(alice, bob, alice_data):
    page = _page(bob)
    body = page.get("/accounts/billing/").content.decode()
    assert "INV-ALICE-0001" not in body and "7,777" not in body
    alice_body = _page(alice).get("/accounts/billing/").content.decode()
    assert "INV-ALICE-0001" in alice_body and "7,777" in alice_body
    status = page.get("/accounts/billing/status/").content.decode()
    assert "7,777" not in status and "Business" not in status
    assert "7,777" in _page(alice).get("/accounts/billing/status/").content.decode()

    pricing = page.get("/pricing/").content.decode()
    assert "Your plan" not in _section(pricing, "business")
    assert "Your plan" in _section(pricing, "free")
    alice_pricing = _page(alice).get("/pricing/").content.decode()
    assert "Your plan" in _section(alice_pricing, "business")

    usage = _api(bob).get("/v1/billing/usage").json()
    assert usage["plan"] == "free" and usage["used"] < 7777
    assert _api(alice).get("/v1/billing/usage").json()["used"] >= 7777


@pytest.mark.integration
@pairs(
    ("v1/billing/checkout", "bob's checkout links a customer to bob only"),
    ("billing/checkout/<str:plan>/", "bob's checkout page links bob only"),
    ("v1/billing/portal", "bob gets no portal (alice's customer is not his)"),
    ("billing/portal/", "bob's portal page does not open alice's portal"),
    ("v1/billing/portal", "alice gets her portal"),
    (
        "stripe/webhook/<uuid:uuid>/",
        "bob's unsigned event does not change alice's plan",
    ),
)
@pytest.mark.usefixtures("synced_plans")
def test_billing_writes_are_per_user(alice, bob, alice_data, request):
    from djstripe.models import Customer

    endpoint = request.getfixturevalue("webhook_endpoint")

    refused = _api(bob).post("/v1/billing/portal", {}, format="json")
    assert refused.status_code == 409
    assert refused.json()["code"] == "no_billing_customer"
    portal_page = _page(bob).post("/billing/portal/")
    assert portal_page.status_code == 302
    assert "stripe" not in portal_page["Location"]
    assert _api(alice).post("/v1/billing/portal", {}, format="json").status_code == 200

    checkout = _api(bob).post("/v1/billing/checkout", {"plan": "pro"}, format="json")
    assert checkout.status_code == 200, checkout.json()
    bob_account = BillingAccount.objects.get(user=bob)
    assert bob_account.stripe_customer_id not in ("", "cus_alice")
    assert Customer.objects.get(id=bob_account.stripe_customer_id).subscriber == bob
    page_checkout = _page(bob).post("/billing/checkout/pro/")
    assert page_checkout.status_code in (302, 303)
    assert BillingAccount.objects.get(user=alice).stripe_customer_id == "cus_alice"
    assert BillingAccount.objects.filter(stripe_customer_id="cus_alice").count() == 1

    forged = _page(bob).post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        {"id": "evt_forged", "type": "customer.subscription.deleted",
         "data": {"object": {"id": "sub_x", "customer": "cus_alice",
                             "status": "canceled"}}},
        content_type="application/json",
    )  # fmt: skip
    assert forged.status_code == 400
    assert BillingAccount.objects.get(user=alice).plan == "business"


# ------------------------------------------------------------------ websocket
def _session_socket(user, query: str = "") -> WebsocketCommunicator:
    from apex_site.asgi import application

    client = Client()
    client.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    cookie = f"{name}={client.cookies[name].value}"
    return WebsocketCommunicator(
        application,
        f"/ws/feed/{query}",
        headers=[(b"origin", b"http://localhost"), (b"host", b"localhost"),
                 (b"cookie", cookie.encode())],
    )  # fmt: skip


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pairs(
    ("ws/feed/", "bob receives none of alice's feed updates"),
    ("ws/feed/", "bob receives none of alice's billing updates"),
    ("ws/feed/", "bob cannot pick alice's group (query string, subscribe message)"),
    ("ws/feed/", "alice receives her own"),
)
def test_the_feed_socket_carries_ones_own_group_only(alice, bob):
    from recommendations.services import account_push, feed_group_name, feed_push

    bob_socket = _session_socket(bob, f"?user_id={alice.pk}&group=feed.user.{alice.pk}")
    alice_socket = _session_socket(alice)

    def push_to_alice() -> None:
        with transaction.atomic():
            feed_push(user_id=alice.pk, payload={"items": [1, 2]})
            account_push(user_id=alice.pk, payload={"plan": "business"})

    async def scenario():
        assert (await bob_socket.connect())[0] and (await alice_socket.connect())[0]
        await bob_socket.send_json_to(
            {"type": "subscribe", "group": feed_group_name(alice.pk)}
        )
        await get_channel_layer().group_send(
            feed_group_name(alice.pk), {"type": "feed.update", "payload": {"x": 0}}
        )
        await sync_to_async(push_to_alice)()
        got = [await alice_socket.receive_json_from(timeout=5) for _ in range(3)]
        bob_silent = await bob_socket.receive_nothing(timeout=0.5)
        await bob_socket.send_json_to({"type": "ping"})
        pong = await bob_socket.receive_json_from(timeout=5)
        await bob_socket.disconnect()
        await alice_socket.disconnect()
        return got, bob_silent, pong

    got, bob_silent, pong = async_to_sync(scenario)()
    assert sorted(m["type"] for m in got) == [
        "billing.update", "feed.update", "feed.update",
    ]  # fmt: skip
    assert bob_silent is True, "bob's socket received alice's messages"
    assert pong == {"type": "pong"}  # bob's socket was open all along
