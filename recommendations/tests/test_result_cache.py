"""The per-process result cache: exact answers only, emptied on a bundle swap."""

from __future__ import annotations

import pytest

from recommendations.serving.result_cache import ResultCache
from recommendations.serving.runtime import get_runtime
from recommendations.tests.feed_fixtures import (  # noqa: F401 (fixtures)
    FakeEngine,
    _isolated_serving,
    fake_serving,
    give_history,
    make_catalog,
)


# ------------------------------------------------------------ the LRU itself
def test_lru_evicts_the_least_recently_used_and_size_zero_is_off() -> None:
    bundle = object()
    cache = ResultCache(2)
    cache.put(bundle, "a", 1)
    cache.put(bundle, "b", 2)
    assert cache.get(bundle, "a") == 1  # "a" is now the most recent
    cache.put(bundle, "c", 3)
    assert cache.get(bundle, "b") is None
    assert cache.get(bundle, "a") == 1 and cache.get(bundle, "c") == 3
    assert cache.stats()["hits"] == 3 and cache.stats()["misses"] == 1
    off = ResultCache(0)
    off.put(bundle, "a", 1)
    assert off.get(bundle, "a") is None


def test_another_bundle_never_sees_the_old_bundles_answers() -> None:
    old, new = object(), object()
    cache = ResultCache(10)
    cache.put(old, "k", "old answer")
    assert cache.get(new, "k") is None
    cache.put(new, "other", "x")  # binding to the new bundle drops the old entries
    assert cache.get(old, "k") is None
    assert cache.stats()["entries"] == 1


# ------------------------------------------------------------ through the API


@pytest.fixture
def catalog(db):
    return make_catalog(30)


class CountingEngine(FakeEngine):
    calls: int = 0

    def recommend(self, *args, **kwargs):
        self.calls += 1
        return super().recommend(*args, **kwargs)


@pytest.fixture
def engine(catalog):
    return CountingEngine([m.pk for m in reversed(catalog)])


@pytest.fixture
def member(catalog, engine, tmp_path, user):
    fake_serving(tmp_path, engine)
    give_history(user, catalog[:3])
    return user


def _feed(api_client, user, query="n=5"):
    api_client.force_authenticate(user)
    response = api_client.get(f"/v1/recommendations/user/{user.pk}?{query}")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_a_repeated_request_is_served_from_the_cache(api_client, member, engine,
                                                     catalog):  # fmt: skip
    first = _feed(api_client, member)
    second = _feed(api_client, member)
    assert engine.calls == 1
    assert first["meta"]["cached"] is False and second["meta"]["cached"] is True
    assert second["items"] == first["items"]
    assert "cache" in second["meta"]["timings_ms"]
    # Other parameters are another request.
    _feed(api_client, member, "n=6")
    assert engine.calls == 2


@pytest.mark.django_db
def test_a_new_rating_is_a_new_history_and_asks_the_engine(
    api_client, member, engine, catalog
):
    first = _feed(api_client, member)
    shown = first["items"][0]["id"]
    give_history(member, [m for m in catalog if m.pk == shown])
    after = _feed(api_client, member)
    assert engine.calls == 2 and after["meta"]["cached"] is False
    assert shown not in [i["id"] for i in after["items"]]


@pytest.mark.django_db
def test_a_reload_and_new_weights_empty_the_cache(api_client, member, engine):
    _feed(api_client, member)
    get_runtime().reload()  # a new bundle object, same version
    assert _feed(api_client, member)["meta"]["cached"] is False
    get_runtime().replace_payload(lambda e: e)  # e.g. new ensemble weights
    assert _feed(api_client, member)["meta"]["cached"] is False
    assert _feed(api_client, member)["meta"]["cached"] is True


@pytest.mark.django_db
def test_fallback_answers_are_not_cached(api_client, member, engine):
    engine.error = RuntimeError("ONNX session died")
    broken = _feed(api_client, member)
    assert broken["meta"]["fallback"] is True
    engine.error = None
    healed = _feed(api_client, member)
    assert healed["meta"]["fallback"] is False and healed["meta"]["cached"] is False
