"""Fuzz every operation of the live OpenAPI schema (schemathesis, issue 18).

The schema is the one the app serves (``/v1/schema``), loaded and called
through the WSGI application (the same middleware, authentication,
throttles and exception handler as production; the test database, Redis and
stripe-mock of ``make test``). Every operation, as three callers —
anonymous, a subscriber (JWT) and staff (JWT) — with ten schema-valid and
ten schema-invalid cases each (seeded, so a run is reproducible), judged by
``apex_site.tests.fuzzing.CHECKS``: no 5xx, a documented status, content
type and body, every schema-valid request accepted. The few (operation,
check) pairs JSON Schema cannot express are in
``apex_site.tests.fuzzing.EXCLUDED``, each with its reason. Billing runs against
stripe-mock with synced plans; no artifact is published, so recommendations
come from the database fallback (``meta.fallback``), as in the other API
tests. The long run is ``benchmarks/fuzz_bench.py``.
"""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis import GenerationMode

from accounts.tests.factories import UserFactory
from apex_site.tests.fuzzing import Caller, fuzz, prepare
from billing.tests.conftest import stripe_api, synced_plans  # noqa: F401 (fixtures)
from recommendations.tests.feed_fixtures import (  # noqa: F401 (fixtures)
    _isolated_serving,
    give_history,
    install_runtime,
    make_catalog,
)

pytestmark = [pytest.mark.django_db, pytest.mark.integration, pytest.mark.slow]

SEED = 18
EXAMPLES = 10
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


def _bearer(user) -> dict[str, str]:
    from rest_framework_simplejwt.tokens import RefreshToken

    return {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"}


@pytest.fixture
def _connection_kept():
    """Calls into the WSGI app keep the test's connection (and transaction),
    as Django's test client does: no closing of old connections per request."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_world(_connection_kept, synced_plans, tmp_path, settings):  # noqa: F811
    """A catalog, a subscriber with a history, a staff member; no artifacts
    (the database fallback serves), billing on stripe-mock."""
    from apex_site.wsgi import application

    install_runtime(tmp_path / "no-artifacts")
    # The fuzzer calls faster than a plan's per-second rate: without this most
    # of the subscriber's metered calls would be 429s (documented, but they
    # hide what the operation does). The meter has its own tests
    # (billing/tests/test_quota*.py).
    settings.APEX_METERED_PATHS = ()
    movies = make_catalog(12)
    subscriber = UserFactory()
    give_history(subscriber, movies[:4])
    staff = UserFactory(is_staff=True)
    schema = prepare(schemathesis.openapi.from_wsgi("/v1/schema", application))
    callers = {
        "anonymous": Caller("anonymous"),
        "subscriber": Caller("subscriber", _bearer(subscriber)),
        "staff": Caller("staff", _bearer(staff)),
    }
    return schema, callers


@pytest.mark.parametrize("caller", ["anonymous", "subscriber", "staff"])
def test_every_operation_keeps_its_schema(fuzz_world, caller):
    schema, callers = fuzz_world
    report = fuzz(
        schema, callers[caller], max_examples=EXAMPLES, seed_value=SEED, modes=MODES
    )
    assert report.operations >= 25
    assert report.requests >= report.operations
    assert report.server_errors == 0, report.describe()
    assert not report.failures, f"{dict(report.failures)}\n\n{report.describe()}"
    print(f"{caller}: {report.requests} requests, statuses {dict(report.statuses)}")


def test_the_schema_states_what_the_views_check():
    """The lies a generated client met before issue 18, one by one."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths, components = schema["paths"], schema["components"]["schemas"]

    movies = paths["/v1/catalog/movies"]["get"]
    page = movies["responses"]["200"]["content"]["application/json"]["schema"]
    page = components[page["$ref"].rsplit("/", 1)[1]]
    assert {"count", "next", "previous", "results"} <= set(page["properties"])
    params = {p["name"]: p["schema"] for p in movies["parameters"]}
    assert params["page_size"]["maximum"] == 100
    assert params["decade"]["multipleOf"] == 10

    feed = paths["/v1/recommendations/user/{user_id}"]["get"]
    params = {p["name"]: p["schema"] for p in feed["parameters"]}
    assert (params["n"]["minimum"], params["n"]["maximum"]) == (1, 100)
    assert (params["diversity"]["minimum"], params["diversity"]["maximum"]) == (0, 1)

    error = {"$ref": "#/components/schemas/Error"}
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if operation.get("security") not in (None, [{}]):
                assert {"401", "403"} <= set(responses), (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith("4"):
                    body = response["content"]["application/json"]["schema"]
                    assert body == error, (method, path, status)
