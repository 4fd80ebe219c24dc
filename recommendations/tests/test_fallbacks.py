"""Failure behaviour: no artifacts, corrupt artifacts, an engine that raises,
a payload that is no engine. Each is a 200 (API) / a rendered page with the
fallback flag and exactly one WARNING, never a 500."""

from __future__ import annotations

import logging

import pytest

from accounts.tests.factories import UserFactory
from recommendations import selectors as feed_selectors
from recommendations.engine.errors import UnknownItemError
from recommendations.tests.feed_fixtures import (  # noqa: F401 (fixtures)
    FakeEngine,
    _isolated_serving,
    fake_serving,
    give_history,
    install_runtime,
    make_catalog,
    publish_dummy,
)

pytestmark = pytest.mark.django_db


def warnings_of(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING]


@pytest.fixture
def catalog():
    return make_catalog()


@pytest.fixture
def member(api_client, catalog):
    user = UserFactory()
    give_history(user, catalog[:5])
    api_client.force_authenticate(user)
    return user


def _no_artifacts(tmp_path):
    install_runtime(tmp_path / "empty")  # no folder, no current version


def _corrupt_artifacts(tmp_path):
    root = tmp_path / "artifacts"
    store = publish_dummy(root)
    (store.root / "v1" / "model.bin").write_text("tampered")
    install_runtime(root)


def _engine_raises(tmp_path):
    fake_serving(tmp_path, FakeEngine([], error=RuntimeError("ONNX session died")))


def _not_an_engine(tmp_path):
    root = tmp_path / "artifacts"
    publish_dummy(root)
    install_runtime(root, loader=lambda folder, manifest, tier: {"just": "json"})


FAILURES = {
    "no_artifacts": (_no_artifacts, {"no_current_artifacts", "artifacts_root_missing",
                                     "serving_unavailable"}),
    "corrupt_artifacts": (_corrupt_artifacts, {"serving_unavailable"}),
    "engine_raises": (_engine_raises, {"engine_error"}),
    "not_an_engine": (_not_an_engine, {"no_engine"}),
}  # fmt: skip


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_user_api_serves_the_fallback_with_one_warning(
    failure, tmp_path, api_client, member, catalog, caplog
):
    setup, reasons = FAILURES[failure]
    setup(tmp_path)
    caplog.set_level(logging.INFO)
    response = api_client.get(f"/v1/recommendations/user/{member.pk}?n=8")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["meta"]["fallback"] is True
    assert body["meta"]["fallback_reason"] in reasons
    assert body["meta"]["scorer"] == "database"
    ids = [item["id"] for item in body["items"]]
    assert len(ids) == 8
    seen = {m.pk for m in catalog[:5]}
    assert not seen & set(ids)  # still excludes the history
    # content fallback: the user's history is all three genres' first films,
    # so the most popular unseen films come first
    assert ids == [m.pk for m in catalog[5:13]]
    assert len(warnings_of(caplog)) == 1, [r.getMessage() for r in caplog.records]
    assert "fallback" in warnings_of(caplog)[0].getMessage()


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_similar_and_graph_api_serve_the_fallback(
    failure, tmp_path, api_client, member, catalog, caplog
):
    FAILURES[failure][0](tmp_path)
    caplog.set_level(logging.INFO)
    anchor = catalog[0]
    similar = api_client.get(f"/v1/recommendations/id/{anchor.pk}?n=4")
    assert similar.status_code == 200
    assert similar.json()["meta"]["fallback"] is True
    items = similar.json()["items"]
    assert [i["id"] for i in items] == [m.pk for m in catalog[3:15:3]]  # same genre
    assert len(warnings_of(caplog)) == 1
    caplog.clear()
    graph = api_client.get(f"/v1/recommendations/knowledge-graph/{anchor.pk}")
    assert graph.status_code == 200
    assert graph.json()["meta"]["fallback"] is True
    assert len(warnings_of(caplog)) == 1


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_pages_render_the_fallback_with_one_warning(
    failure, tmp_path, client, catalog, caplog
):
    FAILURES[failure][0](tmp_path)
    user = UserFactory()
    give_history(user, catalog[:5])
    client.force_login(user)
    caplog.set_level(logging.INFO)
    page = client.get("/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-row="for_you" ' in html and 'data-fallback="true"' in html
    assert len(warnings_of(caplog)) == 1
    caplog.clear()
    rows = client.get(f"/recommendations/movies/{catalog[0].pk}/rows/")
    assert rows.status_code == 200
    assert "More like this" in rows.content.decode()
    assert len(warnings_of(caplog)) <= 2  # similar + knowledge graph calls


def test_cold_start_page_with_no_artifacts(tmp_path, client, catalog, caplog):
    _no_artifacts(tmp_path)
    client.force_login(UserFactory())
    caplog.set_level(logging.INFO)
    html = client.get("/").content.decode()
    assert 'data-row="cold_start"' in html
    assert 'data-testid="rate-prompt"' in html
    assert len(warnings_of(caplog)) == 1


def test_an_unknown_item_is_a_quiet_fallback(tmp_path, api_client, member, catalog,
                                             caplog):  # fmt: skip
    """A movie added after training: content fallback, INFO not WARNING."""
    fake_serving(tmp_path, FakeEngine([], error=UnknownItemError(catalog[0].pk, 3)))
    caplog.set_level(logging.INFO)
    response = api_client.get(f"/v1/recommendations/id/{catalog[0].pk}")
    assert response.status_code == 200
    assert response.json()["meta"]["fallback_reason"] == "unknown_item"
    assert warnings_of(caplog) == []


def test_a_working_engine_is_not_a_fallback(tmp_path, api_client, member, catalog,
                                            caplog):  # fmt: skip
    order = [m.pk for m in reversed(catalog)]
    fake_serving(tmp_path, FakeEngine(order))
    caplog.set_level(logging.INFO)
    body = api_client.get(f"/v1/recommendations/user/{member.pk}?n=3").json()
    assert body["meta"]["fallback"] is False
    assert body["meta"]["scorer"] == "ensemble"
    assert body["meta"]["artifact_version"] == "v1"
    assert [i["id"] for i in body["items"]] == order[:3]
    assert warnings_of(caplog) == []


def test_feed_for_falls_back_without_raising(tmp_path, catalog):
    _engine_raises(tmp_path)
    user = UserFactory()
    result = feed_selectors.feed_for(user_id=user.pk, n=5)
    assert result.meta.fallback and len(result.items) == 5
