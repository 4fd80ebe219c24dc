"""``manage.py train`` end to end: CSV / DB data -> ensemble -> artifact version
-> the serving runtime loads it and serves recommendations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.tests.factories import UserFactory
from catalog.models import Credit
from catalog.tests.factories import (
    CreditFactory,
    GenreFactory,
    MovieFactory,
    PersonFactory,
)
from learning.models import Interaction
from learning.tests.factories import InteractionFactory
from recommendations.engine.data.synthetic import generate
from recommendations.models import EnsembleWeights
from recommendations.serving.artifacts import ArtifactStore
from recommendations.serving.runtime import ServingRuntime
from recommendations.serving.tiers import CapabilityProbes, CudaInfo, select_tier

pytestmark = pytest.mark.django_db

FAST = ["--members", "itemknn", "lightgcn", "--time-budget", "20", "--seed", "0"]


def tier(requested: str):
    probes = CapabilityProbes(
        cuda=lambda: CudaInfo(False, reason="test"),
        total_ram=lambda: 16 << 30,
        onnxruntime=lambda: True,
    )
    return lambda: select_tier(requested, probes=probes)


@pytest.fixture()
def csv_path(tmp_path: Path) -> Path:
    data = generate(users=60, items=40, interactions=900, clusters=3, seed=3)
    path = tmp_path / "tiny.csv"
    data.interactions().to_frame().to_csv(path, index=False)
    return path


@pytest.fixture()
def artifacts(settings, tmp_path: Path) -> Path:
    settings.APEX_ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.APEX_ARTIFACTS_DIR


def run(*args: str) -> str:
    out = StringIO()
    call_command("train", *args, stdout=out)
    return out.getvalue()


def test_train_on_a_csv_publishes_a_version_the_runtime_serves(
    csv_path: Path, artifacts: Path, monkeypatch
) -> None:
    from recommendations.serving import broadcast

    events: list[str] = []  # running processes must hear of the new version
    real_set_current, real_announce = ArtifactStore.set_current, broadcast.announce
    monkeypatch.setattr(
        ArtifactStore, "set_current",
        lambda self, v: (events.append("set_current"), real_set_current(self, v))[1],
    )  # fmt: skip
    monkeypatch.setattr(
        broadcast, "announce", lambda: (events.append("announce"), real_announce())[1]
    )
    drama = GenreFactory(name="Drama")
    movies = {i: MovieFactory(movielens_id=i, genres=[drama]) for i in range(1, 11)}
    director = PersonFactory(name="Ada Director")
    for i in (1, 2):
        CreditFactory(movie=movies[i], person=director, role=Credit.Role.DIRECTOR)

    out = run("--dataset", str(csv_path), *FAST)

    assert events[-2:] == ["set_current", "announce"]
    store = ArtifactStore(artifacts)
    version = store.require_current()
    assert f"artifact version {version}" in out and "tier onnx" in out
    assert "(active)" in out
    manifest = store.manifest(version)
    assert set(manifest.tiers) == {"pytorch", "onnx", "content"}
    assert manifest.data_snapshot["items"] == 10  # only catalog movies are kept
    assert "ndcg@10" in manifest.metrics and manifest.onnx_opset
    assert store.verify(version).ok
    weights = EnsembleWeights.objects.get()
    assert weights.status == EnsembleWeights.Status.ACTIVE
    assert set(weights.weights) == {"itemknn", "lightgcn"}

    pks = [m.pk for m in movies.values()]
    for requested, expected in (("onnx", 2), ("pytorch", 1), ("content", 3)):
        runtime = ServingRuntime(store=store, decide=tier(requested))
        engine = runtime.get().payload
        assert engine.tier == expected
        served = engine.recommend(pks[:3], n=4)
        assert len(served) == 4 and set(served.item_ids) <= set(pks[3:])
    graph = engine.knowledge_graph(movies[1].pk, n=5)
    assert graph["item"]["title"] == movies[1].title
    assert graph["same_director"]["names"] == ["Ada Director"]
    assert [c["item_id"] for c in graph["same_director"]["items"]] == [movies[2].pk]


def test_no_activate_keeps_current_and_active_weights(
    csv_path: Path, artifacts: Path
) -> None:
    run(
        "--dataset",
        str(csv_path),
        "--id-field",
        "pk",
        *FAST,
        "--artifact-version",
        "first",
    )
    run(
        "--dataset", str(csv_path), "--id-field", "pk", *FAST,
        "--artifact-version", "second", "--no-activate",
    )  # fmt: skip
    store = ArtifactStore(artifacts)
    assert store.current_version() == "first"
    assert sorted(store.versions()) == ["first", "second"]
    statuses = dict(EnsembleWeights.objects.values_list("version", "status"))
    assert statuses == {1: "active", 2: "proposed"}


def test_train_on_the_interaction_log(artifacts: Path) -> None:
    users = [UserFactory() for _ in range(12)]
    movies = [MovieFactory() for _ in range(15)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for u, user in enumerate(users):
        for k in range(6):
            movie = movies[(u * 2 + k) % len(movies)]
            kind = (Interaction.Kind.RATING, Interaction.Kind.WATCH)[k % 2]
            InteractionFactory(
                user=user, movie=movie, kind=kind,
                occurred_at=start + timedelta(hours=u * 10 + k),
            )  # fmt: skip
    InteractionFactory(user=users[0], movie=movies[14], kind=Interaction.Kind.WATCHLIST)

    out = run(*FAST)  # default dataset: the log has events

    assert "platform-log" in out
    store = ArtifactStore(artifacts)
    manifest = store.manifest(store.require_current())
    assert manifest.data_snapshot["users"] == 12
    engine = ServingRuntime(store=store, decide=tier("content")).get().payload
    assert set(engine.item_ids) <= {m.pk for m in movies}
    served = engine.recommend([movies[0].pk, movies[1].pk], n=3)
    assert len(served) == 3 and movies[0].pk not in served.item_ids


def test_unknown_dataset_is_a_command_error(artifacts: Path) -> None:
    with pytest.raises(CommandError):
        run("--dataset", "no-such-data", *FAST)
