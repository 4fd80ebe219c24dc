"""The impression log: queued off the request path, flushed in batches, at
least once, de-duplicated on the request id; never an error to the caller."""

from __future__ import annotations

import time

import pytest
from django.test import override_settings

from experiments import services
from experiments.buffer import reset_impression_buffers
from experiments.models import Impression

pytestmark = pytest.mark.django_db

ITEMS = [
    {"movie_id": 11, "score": 0.9, "propensity": 0.91},
    {"movie_id": 12, "score": 0.7, "propensity": 0.05},
]
POLICY = {"weights_version": 3, "experiment": "exp", "variant": "b",
          "policy": "epsilon_greedy"}  # fmt: skip


def record(request_id: str, user_id=None, **kw) -> bool:
    return services.slate_record(
        request_id=request_id, user_id=user_id, surface="api:recommendations",
        items=kw.pop("items", ITEMS), policy=kw.pop("policy", POLICY), **kw,
    )  # fmt: skip


def test_a_slate_is_queued_and_written_by_the_flush(user, empty_buffer) -> None:
    assert record("req-1", user.pk)
    assert Impression.objects.count() == 0  # nothing written on the request path
    assert empty_buffer.length() == 1
    result = services.impressions_flush()
    assert (result.read, result.inserted, result.malformed) == (1, 1, 0)
    row = Impression.objects.get()
    assert (row.request_id, row.user_id, row.surface) == (
        "req-1",
        user.pk,
        "api:recommendations",
    )
    assert (row.weights_version, row.experiment, row.variant, row.policy) == (
        3, "exp", "b", "epsilon_greedy",
    )  # fmt: skip
    assert row.items == [
        {"movie_id": 11, "position": 0, "score": 0.9, "propensity": 0.91},
        {"movie_id": 12, "position": 1, "score": 0.7, "propensity": 0.05},
    ]
    assert empty_buffer.length() == 0


def test_a_redelivered_slate_makes_no_second_row() -> None:
    record("req-dup")
    record("req-dup")  # the same list recorded twice (a retry)
    services.impressions_flush()
    record("req-dup")  # and again after it was written
    result = services.impressions_flush()
    assert Impression.objects.filter(request_id="req-dup").count() == 1
    assert result.inserted == 0


def test_a_flush_that_dies_before_trimming_loses_nothing(
    monkeypatch, empty_buffer
) -> None:
    for i in range(3):
        record(f"req-{i}")
    real_trim = empty_buffer.trim

    def dies(count):
        raise ConnectionError("worker killed")

    monkeypatch.setattr(empty_buffer, "trim", dies)
    with pytest.raises(ConnectionError):
        services.impressions_flush()
    assert Impression.objects.count() == 3 and empty_buffer.length() == 3
    monkeypatch.setattr(empty_buffer, "trim", real_trim)
    again = services.impressions_flush()  # the batch is delivered again
    assert (again.read, again.inserted) == (3, 0)
    assert Impression.objects.count() == 3 and empty_buffer.length() == 0


def test_flushes_go_in_batches_and_drop_malformed_entries(empty_buffer) -> None:
    for i in range(7):
        record(f"req-{i}")
    empty_buffer.push("{not json")
    result = services.impressions_flush(batch=3)
    assert (result.read, result.inserted, result.malformed) == (8, 7, 1)
    assert Impression.objects.count() == 7


def test_a_second_flush_waits_for_the_first(empty_buffer) -> None:
    record("req-lock")
    assert empty_buffer.lock(timeout_s=5)
    try:
        assert services.impressions_flush().locked
    finally:
        empty_buffer.unlock()
    assert services.impressions_flush().inserted == 1


def test_a_full_batch_kicks_a_flush(django_capture_on_commit_callbacks) -> None:
    from django.core.cache import cache

    cache.delete(services.KICK_KEY)
    with override_settings(APEX_IMPRESSIONS_BATCH=2):
        record("req-a")
        assert Impression.objects.count() == 0
        record("req-b")  # eager Celery here: the kicked flush runs in-process
    assert set(Impression.objects.values_list("request_id", flat=True)) == {
        "req-a",
        "req-b",
    }


def test_recording_never_raises_when_redis_is_down() -> None:
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        reset_impression_buffers()
        started = time.perf_counter()
        assert record("req-lost") is False
        assert time.perf_counter() - started < 2.0
    reset_impression_buffers()


def test_recording_can_be_switched_off(empty_buffer) -> None:
    with override_settings(APEX_IMPRESSIONS_ENABLED=False):
        assert record("req-off") is False
    assert empty_buffer.length() == 0


def test_non_finite_scores_are_stored_as_null() -> None:
    record("req-nan", items=[{"movie_id": 1, "score": float("nan")}])
    services.impressions_flush()
    assert Impression.objects.get().items[0] == {
        "movie_id": 1, "position": 0, "score": None, "propensity": 1.0,
    }  # fmt: skip
