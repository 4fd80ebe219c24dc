"""``/v1/artifacts/*`` and the ``serving`` block of ``/v1/platform/status``."""

from __future__ import annotations

import pytest

from accounts.tests.factories import UserFactory
from recommendations.serving import broadcast
from recommendations.serving import runtime as runtime_module
from recommendations.serving.artifacts import ArtifactStore, read_manifest
from recommendations.serving.runtime import ServingRuntime
from recommendations.serving.tiers import CapabilityProbes, CudaInfo, select_tier

pytestmark = pytest.mark.django_db

GIB = 1 << 30


def _probes():
    return CapabilityProbes(
        cuda=lambda: CudaInfo(False, reason="no NVIDIA driver"),
        total_ram=lambda: 16 * GIB,
        onnxruntime=lambda: True,
        torch_installed=lambda: True,
    )


def publish(store, version, text):
    staging = store.begin_version(version)
    (staging / "model.bin").write_text(text)
    return store.commit(staging, {"metrics": {"ndcg@10": 0.3}})


@pytest.fixture
def store(settings, tmp_path):
    settings.APEX_ARTIFACTS_DIR = tmp_path / "artifacts"
    return ArtifactStore(settings.APEX_ARTIFACTS_DIR)


@pytest.fixture
def serving(store):
    """A fresh process-wide runtime on the test's artifacts folder.

    The endpoints' mechanics are tested with a loader that reads the manifest
    back; loading a real serving engine is covered by test_train_command.py.
    """
    runtime = ServingRuntime(
        loader=lambda folder, manifest, tier: read_manifest(folder),
        decide=lambda: select_tier("auto", probes=_probes()),
    )
    previous = runtime_module.set_runtime(runtime)
    yield runtime
    runtime_module.set_runtime(previous)


@pytest.fixture
def staff_client(api_client):
    api_client.force_authenticate(UserFactory(is_staff=True))
    return api_client


def test_health_is_200_for_an_intact_current_version(api_client, store, serving):
    publish(store, "v1", "weights")
    store.set_current("v1")
    response = api_client.get("/v1/artifacts/health")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["healthy"] is True
    assert body["current_version"] == "v1"
    assert body["loaded_version"] is None  # health never loads models
    assert body["report"]["ok"] is True
    assert body["report"]["checked_files"] == 1
    assert serving.peek() is None


def test_health_is_503_with_the_mismatches(api_client, store, serving):
    publish(store, "v1", "weights")
    store.set_current("v1")
    folder = store.root / "v1"
    (folder / "model.bin").write_text("WEIGHTS")
    (folder / "stray.txt").write_text("?")
    response = api_client.get("/v1/artifacts/health")
    assert response.status_code == 503
    report = response.json()["report"]
    assert response.json()["healthy"] is False
    assert [m["path"] for m in report["checksum_mismatches"]] == ["model.bin"]
    assert report["unexpected"] == ["stray.txt"]

    (folder / "model.bin").unlink()
    report = api_client.get("/v1/artifacts/health").json()["report"]
    assert report["missing"] == ["model.bin"]


def test_health_without_artifacts_is_503_with_the_problem(api_client, store, serving):
    response = api_client.get("/v1/artifacts/health")
    assert response.status_code == 503
    assert response.json()["problem"]["code"] == "artifacts_root_missing"
    publish(store, "v1", "weights")
    response = api_client.get("/v1/artifacts/health")
    assert response.status_code == 503
    assert response.json()["problem"]["code"] == "no_current_artifacts"
    # A named version can be checked before anything is current.
    assert api_client.get("/v1/artifacts/health?version=v1").status_code == 200
    missing = api_client.get("/v1/artifacts/health?version=v9")
    assert missing.status_code == 404
    assert set(missing.json()) == {"code", "message", "detail"}
    assert missing.json()["code"] == "artifact_version_not_found"


def test_reload_needs_a_staff_account(api_client, store, serving):
    publish(store, "v1", "weights")
    store.set_current("v1")
    anonymous = api_client.post("/v1/artifacts/reload", {})
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"

    api_client.force_authenticate(UserFactory())
    forbidden = api_client.post("/v1/artifacts/reload", {})
    assert forbidden.status_code == 403
    assert set(forbidden.json()) == {"code", "message", "detail"}
    assert serving.peek() is None  # refused callers loaded nothing

    api_client.force_authenticate(UserFactory(is_staff=True))
    before = broadcast.current_generation() or 0
    response = api_client.post("/v1/artifacts/reload", {})
    assert response.status_code == 200, response.json()
    assert response.json()["version"] == "v1"
    assert response.json()["scope"] == "all_processes"
    assert serving.peek().version == "v1"
    # Announced to the other processes through the shared cache (they
    # follow it: test_serving_runtime.py), and not followed again here.
    assert broadcast.current_generation() == before + 1
    assert serving._seen == before + 1


def test_reload_to_a_named_version_and_its_failures(staff_client, store, serving):
    publish(store, "v1", "one")
    publish(store, "v2", "two")
    store.set_current("v1")
    serving.warm_up()

    response = staff_client.post("/v1/artifacts/reload", {"version": "v2"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["version"], body["previous_version"]) == ("v2", "v1")
    assert body["tier"]["name"] == "onnx"
    assert store.current_version() == "v2"

    missing = staff_client.post("/v1/artifacts/reload", {"version": "v9"})
    assert missing.status_code == 404
    assert missing.json()["code"] == "artifact_version_not_found"

    bad = staff_client.post("/v1/artifacts/reload", {"version": "../etc"})
    assert bad.status_code == 400
    assert "version" in bad.json()["detail"]

    (store.root / "v1" / "model.bin").write_text("eno")
    failed = staff_client.post("/v1/artifacts/reload", {"version": "v1"})
    assert failed.status_code == 422
    assert failed.json()["code"] == "artifact_load_failed"
    assert failed.json()["detail"]["active_version"] == "v2"
    assert serving.peek().version == "v2"


def test_platform_status_shows_the_tier_and_loaded_version(api_client, store, serving):
    publish(store, "v1", "weights")
    store.set_current("v1")
    before = api_client.get("/v1/platform/status").json()["serving"]
    assert before["state"] == "not_loaded"
    assert before["artifact_version"] is None
    assert before["tier"]["tier"] == 2
    assert before["tier"]["name"] == "onnx"
    assert "no CUDA" in before["tier"]["reason"]
    assert before["tier"]["detected"]["ram_total_mb"] == 16 * 1024
    assert serving.peek() is None  # the status call loaded nothing

    serving.warm_up()
    after = api_client.get("/v1/platform/status").json()["serving"]
    assert after["state"] == "ready"
    assert after["artifact_version"] == "v1"
    assert after["tier"]["downgraded_from"] is None


def test_platform_status_shows_a_downgrade(api_client, store, settings):
    publish(store, "v1", "weights")
    store.set_current("v1")

    def loader(folder, manifest, tier):
        if tier.tier < 3:
            raise RuntimeError("no such model")
        return "content"

    runtime = ServingRuntime(
        loader=loader, decide=lambda: select_tier("1", probes=_probes())
    )
    previous = runtime_module.set_runtime(runtime)
    try:
        runtime.warm_up()
        tier = api_client.get("/v1/platform/status").json()["serving"]["tier"]
    finally:
        runtime_module.set_runtime(previous)
    assert (tier["tier"], tier["downgraded_from"], tier["requested"]) == (3, 1, "1")


def test_the_schema_documents_the_artifact_endpoints(client):
    schema = client.get(
        "/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    ).json()
    health = schema["paths"]["/v1/artifacts/health"]["get"]
    reload = schema["paths"]["/v1/artifacts/reload"]["post"]
    assert {"200", "503"} <= set(health["responses"])
    assert {"200", "401", "403", "404", "422"} <= set(reload["responses"])
    assert health["responses"]["503"]["content"]["application/json"]["examples"]
    assert reload["requestBody"]["content"]["application/json"]["examples"]
