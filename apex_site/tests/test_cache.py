"""The Redis cache reads as a miss and writes nothing when Redis is away,
instead of raising into the request (``apex_site/cache.py``)."""

from __future__ import annotations

from apex_site.cache import SharedRedisCache
from scripts.servers import free_port


def _unreachable_cache() -> SharedRedisCache:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    return SharedRedisCache(
        url, {"OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}
    )


def test_an_unreachable_cache_is_a_miss_and_never_raises(caplog):
    cache = _unreachable_cache()
    assert cache.get("k") is None
    assert cache.get("k", "fallback") == "fallback"
    assert cache.get_many(["a", "b"]) == {}
    assert cache.add("k", 1) is False
    cache.set("k", 1, 30)
    assert cache.set_many({"a": 1}) == ["a"]
    assert cache.delete("k") is False
    cache.delete_many(["a"])
    assert not cache.has_key("k")
    assert "cache unreachable" in caplog.text


def test_a_timeout_of_none_still_means_no_expiry():
    from django.core.cache import cache

    cache.set("apex-test-forever", 1, None)  # None: no expiry, as in Django
    client = cache._cache.get_client(write=True)
    assert client.ttl(cache.make_and_validate_key("apex-test-forever")) == -1
    cache.delete("apex-test-forever")
