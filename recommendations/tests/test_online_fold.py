"""Folding the online KAN into a new artifact version (``online_fold``): events
learned online survive a restart, tier 1 and tier 2 serve the folded weights,
a fold with nothing new writes nothing, a failed fold changes nothing.

The bundle is the real tiny pop + KAN bundle of ``test_online_kan.py``, copied
per test (a fold changes the store's ``current``)."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from apex_site.errors import ApplicationError
from recommendations import online, online_fold, tasks
from recommendations.serving.artifacts import ArtifactStore
from recommendations.serving.runtime import ServingRuntime
from recommendations.tests.feed_fixtures import real_catalog
from recommendations.tests.test_online_kan import _new_events, kan_bundle

__all__ = ["kan_bundle"]  # the module-scoped fixture, used through ``store``

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def store(kan_bundle, settings, tmp_path):
    root = tmp_path / "artifacts"
    shutil.copytree(kan_bundle.root, root, symlinks=True)
    shutil.rmtree(root / ".online", ignore_errors=True)
    settings.APEX_ARTIFACTS_DIR = root
    settings.APEX_SERVING_TIER = "2"
    settings.APEX_ONLINE_GUARD_EVERY = 1
    settings.APEX_ONLINE_GUARD_MARGIN = 0.99  # accept: these tests are about folding
    online.reset_online_learner()
    users = real_catalog(kan_bundle, kan_bundle.train_users[:20])
    yield ArtifactStore(root), kan_bundle, next(iter(users.values()))
    online.reset_online_learner()


def _learn(bundle, user, start: int, stop: int) -> dict:
    items = [int(i) for i in bundle.movies["item_id"]]
    return online.online_learn(event_ids=_new_events(user, items[start:stop]))


def _history(bundle) -> list[int]:
    return [int(i) for i in bundle.movies["item_id"][:5]]


def _kan(engine):
    return engine.ensemble.members[online.MEMBER]


def test_a_fold_serves_the_learned_weights_after_a_restart_on_both_tiers(store):
    from recommendations.engine.models.base import Recommender
    from recommendations.engine.onnx.scorer import OnnxScorer
    from recommendations.engine.serving import ServingEngine

    store, bundle, user = store
    running = ServingRuntime(poll_s=0)  # a serving process, up before the fold
    base_scores = _kan(running.get().payload).score_ids(_history(bundle))
    learned = _learn(bundle, user, 10, 30)
    assert learned["published"] == 1
    seq, snapshot = online.latest_snapshot("kan-v1")
    want_onnx = OnnxScorer(snapshot, precision="fp32").score_ids(_history(bundle))
    want_torch = Recommender.load(snapshot).score_ids(_history(bundle))
    assert not np.allclose(want_onnx, base_scores, atol=1e-6)  # it learned

    result = online_fold.online_fold()

    assert result.folded and result.activated
    assert (result.base_version, result.snapshot_seq, result.events) == (
        "kan-v1", 1, 20,
    )  # fmt: skip
    new = result.artifact_version
    assert store.current_version() == new
    assert store.verify(new).ok
    note = store.manifest(new).notes["online_fold"]
    assert note["base_version"] == "kan-v1"
    assert (note["snapshot_seq"], note["events"]) == (1, 20)
    assert note["folded_at"] and note["snapshot_published_at"]
    assert store.manifest(new).models["kan"]["online"] == {
        "snapshot_seq": 1, "events": 20,
    }  # fmt: skip
    assert store.verify("kan-v1").ok  # the base is intact (its files are linked)

    # a fresh process: the version's own files, no snapshot of it exists
    assert online.latest_snapshot(new) is None
    version_dir = store.path(new)
    tier2 = _kan(ServingEngine.load(version_dir, 2))
    assert tier2.folder == version_dir / "onnx" / "kan"
    np.testing.assert_allclose(tier2.score_ids(_history(bundle)), want_onnx, atol=1e-5)
    tier1 = _kan(ServingEngine.load(version_dir, 1, device="cpu"))
    np.testing.assert_allclose(tier1.score_ids(_history(bundle)), want_torch, atol=1e-5)
    restarted = ServingRuntime(poll_s=0)
    assert restarted.get().version == new
    assert not np.allclose(
        _kan(restarted.get().payload).score_ids(_history(bundle)), base_scores,
        atol=1e-6,
    )  # fmt: skip

    # the process that was running follows the announcement (in a thread, as
    # the poll does: it closes its thread's database connection)
    follower = threading.Thread(target=running.follow, args=(10**6,))
    follower.start()
    follower.join()
    assert running.get().version == new

    # the learner goes on from the folded version, numbering its snapshots anew
    assert _learn(bundle, user, 30, 40)["published"] == 1
    assert online.latest_snapshot(new)[0] == 1
    assert online.snapshot_info(online.latest_snapshot(new)[1])["events"] == 10


def test_a_restarted_learner_starts_from_the_folded_weights(store):
    store, bundle, user = store
    _learn(bundle, user, 10, 30)
    new = online_fold.online_fold().artifact_version
    online.reset_online_learner()  # the learner process restarted
    assert _learn(bundle, user, 30, 40)["published"] == 1
    seq, snapshot = online.latest_snapshot(new)
    assert (seq, online.snapshot_info(snapshot)["version"]) == (1, new)


def test_a_second_fold_with_nothing_learned_writes_no_version(store):
    store, bundle, user = store
    assert online_fold.online_fold().reason == "nothing learned since kan-v1"
    assert store.versions() == ["kan-v1"]
    _learn(bundle, user, 10, 30)
    first = tasks.fold_online_state.delay().get()  # the Celery task (eager here)
    assert first["folded"] and first["activated"]
    again = tasks.fold_online_state.delay().get()
    assert again["folded"] is False
    assert again["reason"] == f"nothing learned since {first['artifact_version']}"
    assert store.versions() == ["kan-v1", first["artifact_version"]]
    assert store.current_version() == first["artifact_version"]


def test_a_failure_mid_fold_leaves_the_active_version_untouched(store, monkeypatch):
    store, bundle, user = store
    _learn(bundle, user, 10, 30)

    def broken_export(model, folder, *, int8):
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(b"half a graph")
        raise OSError("disk full")

    monkeypatch.setattr(online_fold, "_export_onnx", broken_export)
    with pytest.raises(ApplicationError) as caught:
        online_fold.online_fold()
    assert caught.value.code == "online_fold_failed"
    assert store.current_version() == "kan-v1"
    assert store.versions() == ["kan-v1"]
    assert not [p for p in store.root.iterdir() if p.name.startswith(".staging-")]
    assert store.verify("kan-v1").ok
    assert online.latest_snapshot("kan-v1")[0] == 1  # kept for the next try
    monkeypatch.undo()
    assert online_fold.online_fold().folded


def test_old_folds_are_pruned_trained_versions_kept(store):
    store, bundle, user = store
    folded = []
    for n in range(online_fold.FOLDS_KEPT + 1):
        _learn(bundle, user, 10 + 5 * n, 15 + 5 * n)
        folded.append(online_fold.online_fold().artifact_version)
    assert store.versions() == ["kan-v1", *folded[1:]]
    assert not (store.root / ".online" / folded[0]).exists()
    assert store.manifest(folded[-1]).notes["online_fold"]["trained_version"] == (
        "kan-v1"
    )


def test_beat_folds_on_the_learners_queue(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["recommendations-online-fold"]
    assert (
        entry["task"] == tasks.fold_online_state.name == "recommendations.online_fold"
    )
    assert entry["options"]["queue"] == tasks.fold_online_state.queue == "online"
    assert entry["schedule"].total_seconds() == 60 * settings.APEX_ONLINE_FOLD_MINUTES
