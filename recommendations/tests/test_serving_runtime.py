"""The serving runtime: lazy load, hot reload beside the old bundle, failures."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from recommendations.serving.artifacts import ArtifactStore
from recommendations.serving.runtime import (
    ArtifactLoadFailed,
    ServingRuntime,
    ServingUnavailable,
    default_loader,
)
from recommendations.serving.tiers import (
    CapabilityProbes,
    CudaInfo,
    select_tier,
)

GIB = 1 << 30


def cpu_probes(ort=True):
    return CapabilityProbes(
        cuda=lambda: CudaInfo(False, reason="test"),
        total_ram=lambda: 16 * GIB,
        onnxruntime=lambda: ort,
        torch_installed=lambda: True,
    )


def decide(requested="auto", ort=True):
    return lambda: select_tier(requested, probes=cpu_probes(ort))


def publish(store: ArtifactStore, version: str, n_items: int, tiers=None):
    staging = store.begin_version(version)
    (staging / "items.txt").write_text("\n".join(map(str, range(n_items))))
    manifest = store.commit(
        staging, {"models": {"toy": {"n_items": n_items}}, "tiers": tiers or {}}
    )
    return manifest


@pytest.fixture
def store(tmp_path):
    store = ArtifactStore(tmp_path / "artifacts")
    publish(store, "v1", 10)
    publish(store, "v2", 20)
    store.set_current("v1")
    return store


class CountingLoader:
    """Builds a payload slowly, field by field, so a premature swap would show."""

    def __init__(self, delay=0.0):
        self.calls = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, folder, manifest, tier):
        with self.lock:
            self.calls.append((manifest.version, tier.tier))
        payload = {"version": manifest.version}
        items = []
        for line in (folder / "items.txt").read_text().splitlines():
            items.append(int(line))
            if self.delay:
                time.sleep(self.delay)
        payload["items"] = items
        payload["n_items"] = manifest.models["toy"]["n_items"]
        payload["complete"] = True
        return payload


def test_nothing_loads_until_the_first_get(store):
    loader = CountingLoader()
    runtime = ServingRuntime(store=store, loader=loader, decide=decide())
    status = runtime.status()
    assert status["state"] == "not_loaded"
    assert status["artifact_version"] is None
    assert status["tier"]["tier"] == 2  # the decision shows; nothing loaded
    assert runtime.peek() is None
    assert loader.calls == []

    bundle = runtime.get()
    assert bundle.version == "v1"
    assert bundle.payload["n_items"] == 10
    assert bundle.tier.tier == 2
    assert runtime.get() is bundle
    assert runtime.warm_up() is bundle
    assert loader.calls == [("v1", 2)]
    assert runtime.status()["state"] == "ready"
    assert runtime.status()["artifact_version"] == "v1"


def test_concurrent_first_gets_load_once(store):
    loader = CountingLoader(delay=0.002)
    runtime = ServingRuntime(store=store, loader=loader, decide=decide())
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(runtime.get())) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loader.calls) == 1
    assert len({id(b) for b in results}) == 1


def test_the_default_loader_refuses_a_version_that_is_not_a_serving_bundle(store):
    # The real loader (ServingEngine.load) is exercised end to end by
    # test_train_command.py; here: a checksummed folder without bundle.json.
    from recommendations.engine.serving.engine import BundleLoadError

    tier = select_tier("3", probes=cpu_probes(True))
    with pytest.raises(BundleLoadError, match="cannot load the bundle"):
        default_loader(store.path("v2"), store.manifest("v2"), tier)


def test_reload_switches_to_the_current_or_a_named_version(store):
    runtime = ServingRuntime(store=store, loader=CountingLoader(), decide=decide())
    runtime.get()
    result = runtime.reload("v2")
    assert (result.version, result.previous_version) == ("v2", "v1")
    assert runtime.get().payload["n_items"] == 20
    assert store.current_version() == "v2"  # a named reload becomes current

    store.set_current("v1")  # e.g. `manage.py train` published a version
    assert runtime.get().version == "v2"  # until told to reload
    assert runtime.reload().version == "v1"
    assert runtime.get().version == "v1"


def test_a_corrupt_version_keeps_the_old_bundle_and_reports(store, caplog):
    runtime = ServingRuntime(store=store, loader=CountingLoader(), decide=decide())
    old = runtime.get()
    (store.root / "v2" / "items.txt").write_text("tampered")
    with caplog.at_level(logging.ERROR), pytest.raises(ArtifactLoadFailed) as info:
        runtime.reload("v2")
    assert info.value.code == "artifact_load_failed"
    assert "items.txt" in info.value.message
    assert info.value.detail["active_version"] == "v1"
    assert runtime.get() is old
    assert store.current_version() == "v1"  # a failed load never moves the pointer
    status = runtime.status()
    assert status["state"] == "ready"
    assert status["last_error"]["version"] == "v2"
    assert "checksum" in status["last_error"]["reason"]


def test_a_loader_exception_downgrades_tier_then_keeps_old_bundle(store, caplog):
    def loader(folder, manifest, tier):
        if manifest.version == "v2":
            raise RuntimeError(f"cannot load on tier {tier.tier}")
        return manifest.version

    runtime = ServingRuntime(store=store, loader=loader, decide=decide())
    assert runtime.get().payload == "v1"
    caplog.clear()
    with caplog.at_level(logging.WARNING), pytest.raises(ArtifactLoadFailed):
        runtime.reload("v2")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # tier 2 -> 3, then tier 3 failed too
    assert runtime.get().payload == "v1"


def test_missing_tier_artifacts_downgrade_with_one_warning(tmp_path, caplog):
    store = ArtifactStore(tmp_path / "artifacts")
    publish(store, "v1", 5, tiers={"content": ["items.txt"]})
    store.set_current("v1")
    loader = CountingLoader()
    runtime = ServingRuntime(store=store, loader=loader, decide=decide())
    with caplog.at_level(logging.WARNING):
        bundle = runtime.get()
    assert (bundle.tier.tier, bundle.tier.downgraded_from) == (3, 2)
    assert "no onnx artifacts" in bundle.tier.reason
    assert loader.calls == [("v1", 3)]  # tier 2 never attempted: nothing to load
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    status = runtime.status()["tier"]
    assert (status["tier"], status["downgraded_from"]) == (3, 2)

    publish(store, "v2", 5, tiers={"onnx": ["items.txt"], "content": ["items.txt"]})
    assert runtime.reload("v2").tier.tier == 2  # a new version can restore a tier


def test_get_without_artifacts_is_serving_unavailable_and_retries_later(tmp_path):
    store = ArtifactStore(tmp_path / "none")
    loader = CountingLoader()
    runtime = ServingRuntime(
        store=store, loader=loader, decide=decide(), retry_after_s=0.2
    )
    with pytest.raises(ServingUnavailable) as info:
        runtime.get()
    assert info.value.status_code == 503
    assert runtime.status()["state"] == "failed"
    publish(store, "v1", 3)
    store.set_current("v1")
    with pytest.raises(ServingUnavailable):  # within retry_after_s: no new attempt
        runtime.get()
    time.sleep(0.25)
    assert runtime.get().version == "v1"
    assert runtime.status()["last_error"] is None


def test_hot_reload_under_concurrent_requests(store):
    """Readers never fail and always see a complete bundle while reloads run."""
    loader = CountingLoader(delay=0.0002)
    runtime = ServingRuntime(store=store, loader=loader, decide=decide())
    runtime.warm_up()
    stop = threading.Event()
    errors: list[BaseException] = []
    served: dict[str, int] = {"v1": 0, "v2": 0}
    served_lock = threading.Lock()

    def request_loop():
        while not stop.is_set():
            try:
                bundle = runtime.get()
                payload = bundle.payload
                # "Work" with the bundle: every part must agree with the others.
                assert payload["complete"] is True
                assert payload["version"] == bundle.version == bundle.manifest.version
                assert len(payload["items"]) == payload["n_items"]
                assert sum(payload["items"]) == sum(range(payload["n_items"]))
                time.sleep(0)
                with served_lock:
                    served[bundle.version] += 1
            except BaseException as exc:  # noqa: BLE001 - collected for the assert
                errors.append(exc)
                return

    readers = [threading.Thread(target=request_loop) for _ in range(6)]
    for t in readers:
        t.start()
    reloads = 0
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and reloads < 40:
        runtime.reload("v2" if reloads % 2 == 0 else "v1")
        reloads += 1
    stop.set()
    for t in readers:
        t.join()
    assert errors == []
    assert reloads >= 10
    assert served["v1"] > 0 and served["v2"] > 0
    assert len(loader.calls) == reloads + 1


# ------------------------------------------------------------ several processes
class SharedCounter:
    """The shared reload counter of two runtimes (Redis in production)."""

    def __init__(self):
        self.value = 0

    def __call__(self):
        return self.value


def _wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_a_reload_in_one_process_is_followed_by_the_others(store):
    counter = SharedCounter()
    slow = CountingLoader(delay=0.01)

    def runtime():
        return ServingRuntime(store=store, loader=slow, decide=decide(),
                              generation=counter, poll_s=0.01)  # fmt: skip

    answering, other = runtime(), runtime()
    assert answering.get().version == other.get().version == "v1"
    answering.reload("v2")  # what POST /v1/artifacts/reload does, then:
    counter.value += 1
    answering.mark_seen(counter.value)
    # The other process keeps serving v1, complete, while it loads v2 beside it.
    served = []
    assert _wait_for(lambda: served.append(other.get()) or served[-1].version == "v2")
    assert all(b.payload["complete"] for b in served)
    assert {b.version for b in served} <= {"v1", "v2"}
    assert [v for v, _ in slow.calls].count("v2") == 2  # each process loaded once
    time.sleep(0.05)
    other.get()
    assert [v for v, _ in slow.calls].count("v2") == 2  # and never again


def test_a_weights_announcement_rebuilds_the_payload_without_reloading(store):
    counter = SharedCounter()
    loader = CountingLoader()
    runtime = ServingRuntime(store=store, loader=loader, decide=decide(),
                             generation=counter, poll_s=0.01)  # fmt: skip
    before = runtime.get()
    counter.value += 1  # another process activated new ensemble weights
    assert _wait_for(lambda: runtime.get() is not before)
    assert runtime.get().version == "v1" and len(loader.calls) == 1


def test_polling_zero_never_reads_the_counter(store):
    reads = []

    def counter():
        reads.append(1)
        return 5

    runtime = ServingRuntime(store=store, loader=CountingLoader(), decide=decide(),
                             generation=counter, poll_s=0)  # fmt: skip
    runtime.get()
    runtime.get()
    assert len(reads) == 1  # the first load records the generation it is at
