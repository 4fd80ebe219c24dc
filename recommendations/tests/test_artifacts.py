"""The artifact store: commit with checksums, verify, the current pointer, prune."""

from __future__ import annotations

import hashlib
import json
import os
import threading

import pytest

from recommendations.serving.artifacts import (
    ArtifactCommitError,
    ArtifactManifestError,
    ArtifactRootMissing,
    ArtifactStore,
    ArtifactVersionNotFound,
    NoCurrentVersion,
)

FIELDS = {
    "data_snapshot": {"dataset": "synthetic", "events": 1200},
    "models": {"ease": {"l2": 250.0}},
    "metrics": {"ndcg@10": 0.31},
    "onnx_opset": 18,
}


def make_version(store: ArtifactStore, version=None, payload=b"weights", **fields):
    staging = store.begin_version(version)
    (staging / "ease").mkdir()
    (staging / "ease" / "weights.npy").write_bytes(payload)
    (staging / "vocab.json").write_text('{"items": [1, 2, 3]}')
    return store.commit(staging, {**FIELDS, **fields})


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(tmp_path / "artifacts")


def test_commit_writes_a_manifest_with_every_checksum(store):
    manifest = make_version(store, "v1")
    folder = store.root / "v1"
    on_disk = json.loads((folder / "manifest.json").read_text())
    assert on_disk["version"] == "v1"
    assert on_disk["onnx_opset"] == 18
    assert on_disk["data_snapshot"] == FIELDS["data_snapshot"]
    assert set(on_disk["files"]) == {"ease/weights.npy", "vocab.json"}
    expected = hashlib.sha256(b"weights").hexdigest()
    assert on_disk["files"]["ease/weights.npy"] == {"sha256": expected, "size": 7}
    assert manifest.created.tzinfo is not None
    assert store.manifest("v1") == manifest
    assert not list(store.root.glob(".staging-*"))  # moved, not copied
    assert store.verify("v1").ok


def test_an_uncommitted_staging_folder_is_not_a_version(store):
    make_version(store, "v1")
    staging = store.begin_version("v2")
    (staging / "half.bin").write_bytes(b"x")
    assert store.versions() == ["v1"]
    store.abort(staging)
    assert not staging.exists()


def test_versions_get_unique_default_names(store):
    a = make_version(store).version
    b = make_version(store).version
    assert a != b
    assert store.versions() == [a, b]


@pytest.mark.parametrize("bad", ["current", "CURRENT", "../x", ".hidden", "a b", ""])
def test_bad_version_names_are_refused(store, bad):
    with pytest.raises(ArtifactCommitError):
        store.begin_version(bad)


def test_commit_refuses_reserved_fields_and_unknown_tier_files(store):
    staging = store.begin_version("v1")
    (staging / "a.bin").write_bytes(b"a")
    with pytest.raises(ArtifactCommitError, match="version, created and files"):
        store.commit(staging, {"files": {}})
    with pytest.raises(ArtifactCommitError, match="invalid"):
        store.commit(staging, {"onnx_opset": "eighteen"})
    with pytest.raises(ArtifactCommitError, match="nope.onnx"):
        store.commit(staging, {"tiers": {"onnx": ["nope.onnx"]}})
    assert store.commit(staging, {"tiers": {"content": ["a.bin"]}}).version == "v1"


def test_commit_refuses_symlinks(store, tmp_path):
    outside = tmp_path / "secret"
    outside.write_text("x")
    staging = store.begin_version("v1")
    os.symlink(outside, staging / "link")
    with pytest.raises(ArtifactCommitError, match="plain file"):
        store.commit(staging, FIELDS)


def test_a_tampered_file_is_a_checksum_mismatch(store):
    make_version(store, "v1", payload=b"weights")
    (store.root / "v1" / "ease" / "weights.npy").write_bytes(b"WEIGHTS")  # same size
    report = store.verify("v1")
    assert not report.ok
    assert [m.path for m in report.checksum_mismatches] == ["ease/weights.npy"]
    [mismatch] = report.checksum_mismatches
    assert mismatch.expected == hashlib.sha256(b"weights").hexdigest()
    assert mismatch.actual == hashlib.sha256(b"WEIGHTS").hexdigest()
    assert report.missing == report.unexpected == report.size_mismatches == []


def test_a_resized_file_is_a_size_mismatch(store):
    make_version(store, "v1", payload=b"weights")
    (store.root / "v1" / "ease" / "weights.npy").write_bytes(b"weights+more")
    report = store.verify("v1")
    assert [(m.path, m.expected, m.actual) for m in report.size_mismatches] == [
        ("ease/weights.npy", 7, 12)
    ]
    assert report.as_dict()["ok"] is False


def test_a_deleted_file_is_missing_and_an_added_file_is_unexpected(store):
    make_version(store, "v1")
    (store.root / "v1" / "vocab.json").unlink()
    (store.root / "v1" / "ease" / "extra.bin").write_bytes(b"?")
    report = store.verify("v1")
    assert report.missing == ["vocab.json"]
    assert report.unexpected == ["ease/extra.bin"]
    assert report.checked_files == 1


def test_an_unreadable_manifest_is_reported_not_raised(store):
    make_version(store, "v1")
    (store.root / "v1" / "manifest.json").write_text("{not json")
    report = store.verify("v1")
    assert not report.ok
    assert report.manifest_error
    with pytest.raises(ArtifactManifestError):
        store.manifest("v1")


def test_missing_root_version_and_current_are_clear_errors(store):
    with pytest.raises(ArtifactRootMissing, match="does not exist"):
        store.versions()
    with pytest.raises(ArtifactRootMissing):
        store.current_version()
    make_version(store, "v1")
    assert store.current_version() is None
    with pytest.raises(NoCurrentVersion):
        store.verify()
    with pytest.raises(ArtifactVersionNotFound) as info:
        store.manifest("v9")
    assert info.value.status_code == 404
    assert info.value.code == "artifact_version_not_found"
    with pytest.raises(ArtifactVersionNotFound):
        store.set_current("v9")


def test_set_current_switches_a_symlink_atomically(store):
    make_version(store, "v1")
    make_version(store, "v2")
    store.set_current("v1")
    link = store.root / "current"
    assert link.is_symlink() and os.readlink(link) == "v1"
    assert store.current_version() == "v1"
    assert (link / "manifest.json").exists()
    assert store.verify().version == "v1"

    # Readers racing the switch always find a complete version behind `current`.
    stop = threading.Event()
    seen, errors = set(), []

    def reader():
        while not stop.is_set():
            try:
                manifest = json.loads((link / "manifest.json").read_text())
                seen.add(manifest["version"])
            except Exception as exc:  # any failure here is the bug
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(300):
        store.set_current("v2" if i % 2 == 0 else "v1")
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert seen <= {"v1", "v2"}
    assert not list(store.root.glob(".current*"))  # no temporary links left
    assert store.versions() == ["v1", "v2"]  # the pointer is not a version


def test_current_falls_back_to_a_text_file_without_symlinks(store, monkeypatch):
    make_version(store, "v1")
    make_version(store, "v2")

    def no_symlinks(*args, **kwargs):
        raise OSError("symlinks not supported")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    store.set_current("v2")
    assert not (store.root / "current").exists()
    assert (store.root / "CURRENT").read_text().strip() == "v2"
    assert store.current_version() == "v2"
    monkeypatch.undo()
    store.set_current("v1")  # symlinks back: the text file goes away
    assert not (store.root / "CURRENT").exists()
    assert store.current_version() == "v1"


def test_prune_keeps_the_newest_and_never_the_current(store):
    for name in ("v1", "v2", "v3", "v4"):
        make_version(store, name)
    store.set_current("v1")
    assert store.prune(keep=2) == ["v2"]
    assert store.versions() == ["v1", "v3", "v4"]
    assert store.prune(keep=0, protect=["v4"]) == ["v3"]
    assert store.prune(keep=0) == ["v4"]
    assert store.versions() == ["v1"]
    assert store.current_version() == "v1"
    assert store.verify().ok
    assert not list(store.root.glob(".trash-*"))
    with pytest.raises(ValueError):
        store.prune(keep=-1)
