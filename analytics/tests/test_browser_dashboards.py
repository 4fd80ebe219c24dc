"""Every staff dashboard renders with real data in Chromium (a screenshot of
each is written to the test's folder) and draws its charts without a CDN."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.test import Client

from accounts.tests.factories import UserFactory
from analytics import services, slo
from analytics.audits import evaluate_artifact
from analytics.tasks import fairness_audit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

PAGES = ["", "fairness/", "slo/", "privacy/", "models/", "operations/"]


def test_every_dashboard_renders_its_real_data(
    trained, browser_page, live_server, tmp_path, settings
):
    settings.APEX_FAIRNESS_MAX_GINI = 0.0  # the latest audit shows an alert
    evaluate_artifact()
    fairness_audit.delay()  # eager: also recorded in the jobs panel
    services.dp_release(release="genre_counts", dimension="age_band", epsilon=0.5)
    services.dp_release(release="top_movies", dimension="gender", epsilon=0.5)
    staff = UserFactory(is_staff=True)
    client = Client()
    client.force_login(staff)
    client.get("/v1/platform/readiness")  # SLO traffic of this process

    page = browser_page
    page.context.add_cookies(
        [
            {
                "name": django_settings.SESSION_COOKIE_NAME,
                "value": client.cookies[django_settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    for path in PAGES:
        response = page.goto(f"{live_server.url}/staff/analytics/{path}")
        assert response is not None and response.status == 200, path
        page.screenshot(
            path=str(tmp_path / f"dashboard-{path.strip('/') or 'index'}.png"),
            full_page=True,
        )
        text = page.inner_text("main")
        assert "Traceback" not in text
        if path:
            charts = page.locator("svg.chart")
            assert charts.count() >= 1, path
            assert "no data yet" not in text, (path, text[:500])
            # fits a laptop screen: no horizontal scrolling
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280, path
    assert all(url.startswith(live_server.url) for url in requested)  # no CDN

    page.goto(f"{live_server.url}/staff/analytics/fairness/")
    assert "exposure_gini" in page.get_by_test_id("fairness-alert").inner_text()
    page.goto(f"{live_server.url}/staff/analytics/slo/")
    assert "GET v1/platform/readiness" in page.inner_text("main")
    page.goto(f"{live_server.url}/staff/analytics/privacy/")
    assert "top_movies" in page.inner_text("main")
    assert page.get_by_test_id("chart-release").is_visible()
    page.goto(f"{live_server.url}/staff/analytics/models/")
    assert trained["version"] in page.inner_text("main")
    page.goto(f"{live_server.url}/staff/analytics/operations/")
    assert "analytics.fairness_audit" in page.inner_text("main")
    assert page.get_by_test_id("learner-lag").is_visible()
    assert len(list(tmp_path.glob("dashboard-*.png"))) == len(PAGES)
    slo.get_recorder().flush()


def test_dashboards_are_for_staff_only(client, db):
    assert client.get("/staff/analytics/fairness/").status_code == 302  # to login
    client.force_login(UserFactory())
    assert client.get("/staff/analytics/fairness/").status_code == 302
