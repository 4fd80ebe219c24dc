"""Fixtures for the recommendation API, page and fallback tests.

Two kinds of serving engine:

- ``real_bundle``: a REAL bundle trained inside the test session on
  synthetic data (pop + itemknn + ease ensemble, a few seconds on one CPU
  thread), written with ``build_bundle`` into an ``ArtifactStore`` and served
  by ``ServingEngine`` on tier 2 through the real ``ServingRuntime``. Synthetic
  item ``i`` is ``Movie`` pk ``ITEM_BASE + i`` titled ``Item i``
  (``real_catalog`` creates the rows and the users' histories).
- ``FakeEngine``: a scripted engine for failure paths (it raises on demand).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache

from accounts.tests.factories import UserFactory
from catalog.models import Movie
from catalog.tests.factories import GenreFactory, MovieFactory
from learning.models import Interaction
from recommendations.engine.serving.engine import ServedList
from recommendations.serving import runtime as runtime_module
from recommendations.serving.artifacts import ArtifactStore
from recommendations.serving.runtime import ServingRuntime
from recommendations.serving.tiers import CapabilityProbes, CudaInfo, select_tier

ITEM_BASE = 1000
GIB = 1 << 30


def tier2_decision():
    probes = CapabilityProbes(
        cuda=lambda: CudaInfo(False, reason="no NVIDIA driver"),
        total_ram=lambda: 16 * GIB,
        onnxruntime=lambda: True,
        torch_installed=lambda: True,
    )
    return select_tier("auto", probes=probes)


def install_runtime(root: Path, loader=None) -> ServingRuntime:
    """A fresh process-wide runtime on ``root``: the production loader
    (``ServingEngine.load``) unless a test scripts the payload."""
    extra = {} if loader is None else {"loader": loader}
    runtime = ServingRuntime(store=ArtifactStore(root), decide=tier2_decision, **extra)
    runtime_module.set_runtime(runtime)
    return runtime


@pytest.fixture(autouse=True)
def _isolated_serving():
    """Every test gets its own process-wide runtime and an empty cache."""
    previous = runtime_module.get_runtime()
    cache.clear()
    yield
    runtime_module.set_runtime(previous)
    cache.clear()


def publish_dummy(root: Path, version: str = "v1") -> ArtifactStore:
    """A valid artifact version with one file (for the scripted engine)."""
    store = ArtifactStore(root)
    staging = store.begin_version(version)
    (staging / "model.bin").write_text("weights")
    store.commit(staging, {})
    store.set_current(version)
    return store


# ------------------------------------------------------------ scripted engine
def served(ids, *, scorer="ensemble", reason="Because you watched Movie X"):
    ids = tuple(ids)
    return ServedList(
        item_ids=ids,
        scores=tuple(1.0 - 0.01 * k for k in range(len(ids))),
        reasons=(reason,) * len(ids),
        flags={"fallback": False, "gate_fired": False, "scorer": scorer, "tier": 2},
        timings_ms={"retrieval": 0.1, "ranking": 0.2, "reranking": 0.1, "engine": 0.5},
    )


@dataclass
class FakeEngine:
    """Serves ``order`` (minus exclusions); raises ``error`` when set."""

    order: list[int]
    error: Exception | None = None

    def _check(self):
        if self.error is not None:
            raise self.error

    def recommend(self, history_ids, *, n=10, diversity=None, exclude_seen=True,
                  exclude_ids=(), explain=True):  # fmt: skip
        self._check()
        skip = set(exclude_ids) | (set(history_ids) if exclude_seen else set())
        return served([i for i in self.order if i not in skip][:n])

    def similar(self, item_id, *, n=10, diversity=None):
        self._check()
        return served([i for i in self.order if i != item_id][:n])

    def popular(self, n, exclude_ids=()):
        self._check()
        return served(self.order[:n], scorer="popularity", reason="Popular right now")

    def knowledge_graph(self, item_id, *, n=10):
        self._check()
        cards = [{"item_id": i, "title": "?", "year": None} for i in self.order[:n]]
        return {
            "item": {"item_id": item_id},
            "same_director": {"names": ["Ann Director"], "items": cards},
            "same_collection": {"names": [], "items": []},
            "lead_cast": {"names": [], "items": []},
            "genres": {"names": [], "items": []},
        }

    def with_weights(self, weights, *, gate_threshold=None):
        return FakeEngine(list(reversed(self.order)), self.error)


def fake_serving(tmp_path: Path, engine: Any) -> ServingRuntime:
    root = tmp_path / "artifacts"
    publish_dummy(root)
    return install_runtime(root, loader=lambda folder, manifest, tier: engine)


# ------------------------------------------------------------ a small catalog
def make_catalog(n: int = 80) -> list[Movie]:
    """``n`` movies over three genres with falling popularity."""
    genres = [GenreFactory(name=name) for name in ("Drama", "Comedy", "Sci-Fi")]
    movies = []
    for k in range(n):
        movie = MovieFactory(
            title=f"Film {k:02d}",
            year=1980 + k,
            genres=[genres[k % 3]],
        )
        movie.rating_count = 1000 - 3 * k
        movie.rating_mean = 3.0 + (k % 5) / 5
        movie.save(update_fields=["rating_count", "rating_mean"])
        movies.append(movie)
    return movies


def give_history(user, movies, *, start: datetime | None = None, kind="rating"):
    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    Interaction.objects.bulk_create(
        [
            Interaction(
                user=user,
                movie=movie,
                kind=kind,
                value=4.0 if kind == "rating" else None,
                occurred_at=start + timedelta(minutes=k),
                source="test",
                idempotency_key=f"test:{user.pk}:{movie.pk}:{kind}:{k}",
            )
            for k, movie in enumerate(movies)
        ]
    )


# ------------------------------------------------------------ a REAL tiny bundle
@dataclass(frozen=True)
class RealBundle:
    root: Path
    ratings: Any  # the synthetic events, item ids already ITEM_BASE + i
    movies: Any  # item_id, title, year, genres
    train_users: list[int]


@pytest.fixture(scope="session", name="real_bundle")
def real_bundle_fixture(tmp_path_factory) -> RealBundle:
    """Train pop + itemknn + ease on synthetic data and publish the bundle."""
    os.environ.setdefault("APEX_TORCH_THREADS", "1")
    from recommendations.engine.data.interactions import Interactions
    from recommendations.engine.data.splits import leave_one_out
    from recommendations.engine.data.synthetic import generate
    from recommendations.engine.models.ensemble import Ensemble
    from recommendations.engine.pipeline.items import ItemMetadata
    from recommendations.engine.serving.build import build_bundle
    from recommendations.engine.training.trainer import Trainer

    data = generate(users=80, items=150, interactions=2000, clusters=4, seed=3)
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
    # DR weights: on this data they blend itemknn and ease (the NDCG default
    # keeps ease alone), so the serving tests see a real blend of members
    ensemble = Ensemble(members=("pop", "itemknn", "ease"), samples=20, objective="dr")
    ensemble.fit(split.train, split.validation_task(), Trainer(seed=1))
    root = tmp_path_factory.mktemp("real-bundle") / "artifacts"
    store = ArtifactStore(root)
    staging = store.begin_version("tiny-v1")
    fields = build_bundle(
        staging,
        train=split.train,
        ensemble=ensemble,
        metadata=ItemMetadata.from_interactions(split.train),
        profile="quick",
        seed=1,
    )
    store.commit(staging, fields)
    store.set_current("tiny-v1")
    return RealBundle(root, ratings, movies, sorted(ratings["user_id"].unique()))


def real_catalog(bundle: RealBundle, user_ids: list[int]) -> dict[int, Any]:
    """Movies for every synthetic item and accounts with the synthetic
    histories of ``user_ids``; returns ``{synthetic user id: User}``."""
    genres = {}
    for names in bundle.movies["genres"]:
        for name in names:
            genres.setdefault(name, GenreFactory(name=name))
    for row in bundle.movies.itertuples():
        movie = Movie.objects.create(
            pk=int(row.item_id), title=row.title, year=int(row.year)
        )
        movie.genres.add(*(genres[g] for g in row.genres))
    counts = bundle.ratings.groupby("item_id").size()
    for item_id, count in counts.items():
        Movie.objects.filter(pk=int(item_id)).update(rating_count=int(count))
    users = {}
    for synthetic_id in user_ids:
        user = UserFactory()
        events = bundle.ratings[bundle.ratings["user_id"] == synthetic_id]
        Interaction.objects.bulk_create(
            [
                Interaction(
                    user=user,
                    movie_id=int(e.item_id),
                    kind="rating",
                    value=float(e.rating),
                    occurred_at=datetime.fromtimestamp(int(e.timestamp), UTC),
                    source="movielens:synthetic",
                    idempotency_key=f"syn:{synthetic_id}:{e.item_id}",
                )
                for e in events.itertuples()
            ]
        )
        users[synthetic_id] = user
    return users
