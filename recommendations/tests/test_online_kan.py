"""The online KAN in the product: applied events train the current version's
KAN (engine ``OnlineLearner``), an accepted update is published as a snapshot
(KAN + ONNX graph), and a serving process on tier 2 swaps its KAN member for
it — at load and when the snapshot is announced. A real tiny bundle (pop +
KAN, trained on synthetic data in this module) is served."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime

import numpy as np
import pytest

from learning.models import Interaction
from recommendations import online
from recommendations.serving.runtime import ServingRuntime
from recommendations.tests.feed_fixtures import ITEM_BASE, RealBundle, real_catalog

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def kan_bundle(tmp_path_factory) -> RealBundle:
    os.environ.setdefault("APEX_TORCH_THREADS", "1")
    from recommendations.engine.data.interactions import Interactions
    from recommendations.engine.data.splits import leave_one_out
    from recommendations.engine.data.synthetic import generate
    from recommendations.engine.models.ensemble import Ensemble
    from recommendations.engine.pipeline.items import ItemMetadata
    from recommendations.engine.serving.build import build_bundle
    from recommendations.engine.training.trainer import Trainer
    from recommendations.serving.artifacts import ArtifactStore

    data = generate(users=40, items=80, interactions=800, clusters=4, seed=5)
    ratings = data.ratings.copy()
    ratings["item_id"] += ITEM_BASE
    movies = data.movies.copy()
    movies["item_id"] += ITEM_BASE
    full = Interactions.from_frame(
        ratings,
        item_features=movies.set_index("item_id")[["title", "year", "genres"]],
        name="synthetic",
    )
    split = leave_one_out(full)
    ensemble = Ensemble(
        members=("pop", "kan"),
        samples=10,
        member_overrides={"kan": {"samples_per_epoch": 256, "svd_dim": 8}},
    )
    ensemble.fit(split.train, split.validation_task(), Trainer(seed=1, max_epochs=1))
    ensemble.set_weights({"pop": 0.2, "kan": 0.8})
    root = tmp_path_factory.mktemp("kan-bundle") / "artifacts"
    store = ArtifactStore(root)
    staging = store.begin_version("kan-v1")
    fields = build_bundle(
        staging, train=split.train, ensemble=ensemble,
        metadata=ItemMetadata.from_interactions(split.train), profile="quick", seed=1,
    )  # fmt: skip
    store.commit(staging, fields)
    store.set_current("kan-v1")
    return RealBundle(root, ratings, movies, sorted(ratings["user_id"].unique()))


@pytest.fixture
def served(kan_bundle, settings):
    settings.APEX_ARTIFACTS_DIR = kan_bundle.root
    settings.APEX_SERVING_TIER = "2"
    settings.APEX_ONLINE_GUARD_EVERY = 1
    settings.APEX_ONLINE_GUARD_MARGIN = 0.99  # accept: this test is about shipping
    online.reset_online_learner()
    shutil.rmtree(kan_bundle.root / ".online", ignore_errors=True)
    users = real_catalog(kan_bundle, kan_bundle.train_users[:20])
    yield kan_bundle, users
    online.reset_online_learner()


def _new_events(user, movie_ids: list[int]) -> list[int]:
    now = datetime.now(UTC)
    return [
        Interaction.objects.create(
            user=user, movie_id=m, kind="click", occurred_at=now,
            source="api", idempotency_key=f"online:{user.pk}:{m}",
        ).pk
        for m in movie_ids
    ]  # fmt: skip


def _kan_scores(runtime: ServingRuntime, history: list[int]) -> np.ndarray:
    kan = runtime.get().payload.ensemble.members["kan"]
    return kan.score_ids(history)


def test_accepted_online_updates_reach_a_serving_process(served):
    bundle, users = served
    runtime = ServingRuntime(poll_s=0)
    runtime.get()
    user = next(iter(users.values()))
    history = [int(i) for i in bundle.movies["item_id"][:5]]
    before = _kan_scores(runtime, history)

    ids = _new_events(user, [int(i) for i in bundle.movies["item_id"][10:30]])
    result = online.online_learn(event_ids=ids)
    assert result["events"] == 20 and result["published"] == 1
    latest = online.latest_snapshot("kan-v1")
    assert latest is not None and latest[0] == 1
    assert (latest[1] / "model.onnx").is_file()
    assert online.announced() == {"version": "kan-v1", "seq": 1}

    runtime.follow_online("kan-v1", 1)  # what the poll does in the background
    member = runtime.get().payload.ensemble.members["kan"]
    assert member.folder == latest[1]  # an OnnxScorer over the snapshot
    assert not np.array_equal(_kan_scores(runtime, history), before)

    fresh = ServingRuntime(poll_s=0)  # a process started later
    assert fresh.get().payload.ensemble.members["kan"].folder == latest[1]


def test_a_restarted_learner_resumes_from_the_newest_snapshot(served):
    bundle, users = served
    user = next(iter(users.values()))
    items = [int(i) for i in bundle.movies["item_id"]]
    online.online_learn(event_ids=_new_events(user, items[10:20]))
    online.reset_online_learner()  # the worker restarted
    result = online.online_learn(event_ids=_new_events(user, items[20:30]))
    assert result["published"] == 2
    assert online.latest_snapshot("kan-v1")[0] == 2


def test_movies_the_model_has_never_seen_are_skipped(served):
    from catalog.models import Movie

    _bundle, users = served
    user = next(iter(users.values()))
    newcomer = Movie.objects.create(title="Released after training", year=2026)
    assert online.online_learn(event_ids=_new_events(user, [newcomer.pk])) == {
        "events": 0
    }


def test_without_artifacts_nothing_is_learned(settings, tmp_path, user):
    settings.APEX_ARTIFACTS_DIR = tmp_path / "none"
    online.reset_online_learner()
    assert online.online_learn(event_ids=[1])["skipped"]
