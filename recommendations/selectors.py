"""Reads: the served lists (a user's feed, the home and movie page rows,
similar movies, the knowledge graph) and trending.

Every list comes from the serving engine of the active artifact bundle (a
``ServingEngine``, which works on external item ids = catalog ``Movie``
primary keys) through the failure policy (``serving/policy.py``: never a
500, one WARNING, a database fallback). This module adds what the engine
cannot know: the user's history (``learning.selectors.user_history_ids``:
the positive events, oldest first, read on every call so a new rating shows
on the next request) and the catalog rows behind the ids
(``catalog.selectors.movie_cards``: one ``in_bulk`` per page or response,
cached per process).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from django.core.cache import cache

from apex_site.errors import ApplicationError, ErrorCode
from catalog import selectors as catalog_selectors
from learning import selectors as learning_selectors
from recommendations.engine.bandits.exploration import ExplorationConfig
from recommendations.results import (
    FeedItem,
    FeedMeta,
    FeedResult,
    FeedRow,
    KnowledgeGraphResult,
    Served,
)
from recommendations.serving.policy import Serving, is_answer

DEFAULT_N = 10
ROW_SIZE = 12
TRENDING_DAYS = 30
_TRENDING_SECONDS = 300
# Open feed sockets per user (``services.feed_tab_opened``). A tab pings every
# 60 s (static/js/live_feed.js), so a count a crashed process never took back
# lapses after TABS_TTL_S.
TABS_KEY = "recommendations:feed-tabs:{user_id}"
TABS_TTL_S = 180


# ------------------------------------------------------------------ open tabs
def feed_tabs_open_many(*, user_ids: Iterable[int]) -> set[int]:
    """Which of ``user_ids`` have a feed socket open (one cache read)."""
    keys = {TABS_KEY.format(user_id=u): u for u in user_ids}
    if not keys:
        return set()
    return {keys[k] for k, count in cache.get_many(list(keys)).items() if count}


# ------------------------------------------------------------------ trending
def trending_ids(*, n: int, days: int = TRENDING_DAYS) -> list[int]:
    """Movies with the most positive events in the log's last ``days`` days
    (measured back from the newest event), topped up with the most rated
    movies. Cached for five minutes: it is the same for everybody."""
    key = f"recommendations:trending:{n}:{days}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    ids = learning_selectors.most_active_movie_ids(n=n, days=days)
    if len(ids) < n:
        ids += catalog_selectors.popular_ids(n=n - len(ids), exclude_ids=set(ids))
    cache.set(key, ids, _TRENDING_SECONDS)
    return ids


# ------------------------------------------------------------------ hydration
def _result(served: Served, movies: Mapping[int, Any], explain: bool) -> FeedResult:
    kept = [k for k, movie_id in enumerate(served.ids) if movie_id in movies]
    items = [
        FeedItem(
            movie=movies[served.ids[k]],
            score=served.scores[k],
            reason=served.reasons[k] if explain else None,
        )
        for k in kept
    ]
    propensities = (
        None if served.propensities is None else [served.propensities[k] for k in kept]
    )
    return FeedResult(items, served.meta, propensities, candidates=served.candidates)


def _timed(result: FeedResult, **timings_ms: float) -> FeedResult:
    timings = {
        **result.meta.timings_ms,
        **{k: round(v, 3) for k, v in timings_ms.items()},
    }
    return replace(result, meta=replace(result.meta, timings_ms=timings))


def _movie_or_404(movie_id: int) -> None:
    if not catalog_selectors.movie_exists(movie_id=movie_id):
        raise ApplicationError(
            "No such movie.", code=ErrorCode.NOT_FOUND, status_code=404
        )


# ------------------------------------------------------------------ user feed
def _user_served(
    serving: Serving,
    history: list[int],
    *,
    n: int,
    diversity: float | None,
    exclude_seen: bool,
    explain: bool,
    exclude_ids: Iterable[int] = (),
    what: str = "user feed",
    exploration: ExplorationConfig | None = None,
    member_scores: bool = False,
) -> Served:
    excluded = list(exclude_ids)
    # an exploring list is random on purpose, and a list asked for its
    # members' scores needs the engine: neither comes from the cache
    explores = exploration is not None and exploration.enabled
    extra: dict[str, Any] = {"exploration": exploration} if explores else {}
    if member_scores:
        extra["member_scores"] = True

    def fallback() -> tuple[list[int], str | None]:
        skip = set(excluded) | (set(history) if exclude_seen else set())
        ids = catalog_selectors.genre_neighbour_ids(
            anchor_ids=history[-10:], n=n, exclude_ids=skip
        )
        return ids, "Popular in genres you watch" if history else "Popular right now"

    return serving.serve(
        what,
        lambda engine: engine.recommend(
            history,
            n=n,
            diversity=diversity,
            exclude_seen=exclude_seen,
            exclude_ids=tuple(excluded),
            explain=explain,
            **extra,
        ),
        fallback,
        cache_key=None if extra else (
            "user", tuple(history), n, diversity, exclude_seen, explain,
            tuple(sorted(excluded)),
        ),
    )  # fmt: skip


def feed_for(
    *,
    user_id: int,
    n: int = DEFAULT_N,
    diversity: float | None = None,
    exclude_seen: bool = True,
    explain: bool = True,
    weights_version: int | None = None,
    exploration: ExplorationConfig | None = None,
    member_scores: bool = False,
) -> FeedResult:
    """The user's recommendations from their current history.

    ``weights_version`` and ``exploration``: an experiment variant's (see
    ``experiments.selectors.Assignment``); ``meta.policy`` and
    ``meta.weights_version`` say what was served, ``propensities`` the
    probability of each shown item under that policy. ``member_scores``:
    also the candidates' member scores (``FeedResult.candidates``).
    """
    started = time.perf_counter()
    history = learning_selectors.user_history_ids(user_id=user_id)
    history_ms = 1e3 * (time.perf_counter() - started)
    served = _user_served(
        Serving.open().with_weights_version(weights_version),
        history,
        n=n,
        diversity=diversity,
        exclude_seen=exclude_seen,
        explain=explain,
        exploration=exploration,
        member_scores=member_scores,
    )
    started = time.perf_counter()
    result = _result(served, catalog_selectors.movie_cards(served.ids), explain)
    return _timed(
        result, history=history_ms, hydrate=1e3 * (time.perf_counter() - started)
    )


# ------------------------------------------------------------------ home page
def _diverse(ids: Sequence[int], movies: Mapping[int, Any], n: int) -> list[int]:
    """Greedy genre spread: each pick prefers a movie whose first genre has not
    been picked yet, in the given (popularity) order."""
    picked: list[int] = []
    used: set[str] = set()
    rest: list[int] = []
    for movie_id in ids:
        movie = movies.get(movie_id)
        if movie is None:
            continue
        names = movie.genre_names
        main = names[0] if names else ""
        if main not in used and len(picked) < n:
            used.add(main)
            picked.append(movie_id)
        else:
            rest.append(movie_id)
    return (picked + rest)[:n]


def _reordered(served: Served, ids: list[int]) -> Served:
    index = {movie_id: i for i, movie_id in enumerate(served.ids)}
    return served.keep([index[i] for i in ids])


def home_rows(
    *,
    user_id: int,
    n: int = ROW_SIZE,
    weights_version: int | None = None,
    exploration: ExplorationConfig | None = None,
) -> list[FeedRow]:
    """The signed-in home page: rows from the user's current history.

    With history: for you; because you watched <latest>; trending; hidden
    gems from the long tail. Without: a cold-start row (popular movies spread
    over genres) with a prompt to rate, and trending. Rows do not repeat each
    other's movies. One WARNING per request when the engine is unavailable.
    ``weights_version`` / ``exploration`` (an experiment variant's) apply to
    the "For you" row only.
    """
    serving = Serving.open()
    history = learning_selectors.user_history_ids(user_id=user_id)
    seen = set(history)
    planned: list[tuple[str, str, Served, str | None]] = []
    shown: set[int] = set()
    movies: dict[int, Any] = {}

    def add(key: str, title: str, served: Served, prompt: str | None = None) -> None:
        keep = [i for i, movie_id in enumerate(served.ids) if movie_id not in shown][:n]
        served = served.keep(keep)
        shown.update(served.ids)
        planned.append((key, title, served, prompt))

    if history:
        add(
            "for_you",
            "For you",
            _user_served(serving.with_weights_version(weights_version), history,
                         n=n, diversity=None, exclude_seen=True, explain=True,
                         what="for-you row", exploration=exploration),
        )  # fmt: skip
        latest = history[-1]
        add(
            "because",
            "Because you watched",  # the title is completed after hydration
            _user_served(serving, [latest], n=n, diversity=None, exclude_seen=True,
                         explain=True, exclude_ids=seen | shown,
                         what="because-you-watched row"),
        )  # fmt: skip
    else:
        pool = 4 * n

        def cold_fallback() -> tuple[list[int], str | None]:
            return catalog_selectors.popular_ids(n=pool), "Popular right now"

        cold = serving.serve(
            "cold-start row", lambda engine: engine.popular(pool), cold_fallback
        )
        movies.update(catalog_selectors.movie_cards(cold.ids))  # spread needs genres
        add(
            "cold_start",
            "Popular picks to start with",
            _reordered(cold, _diverse(cold.ids, movies, n)),
            prompt="Rate a few movies you have seen and this page becomes yours.",
        )
    trending = [i for i in trending_ids(n=n * 4) if i not in seen]
    add(
        "trending",
        "Trending now",
        Served(
            trending,
            [None] * len(trending),
            ["Trending"] * len(trending),
            serving.db_meta(),
        ),
    )
    if history:
        tail_excluded = seen | shown | catalog_selectors.head_ids()

        def gems_fallback() -> tuple[list[int], str | None]:
            return (
                catalog_selectors.long_tail_ids(n=n, exclude_ids=seen | shown),
                "A well-rated film few people have found",
            )

        add(
            "hidden_gems",
            "Hidden gems",
            serving.serve(
                "hidden-gems row",
                lambda engine: engine.recommend(
                    history, n=n, exclude_seen=True,
                    exclude_ids=tuple(tail_excluded), explain=True,
                ),
                gems_fallback,
            ),
        )  # fmt: skip
    wanted = [i for _, _, served, _ in planned for i in served.ids] + history[-1:]
    movies.update(catalog_selectors.movie_cards(i for i in wanted if i not in movies))
    rows = []
    for key, title, served, prompt in planned:
        if key == "because" and history[-1] in movies:
            title = f"Because you watched {movies[history[-1]].title}"
        result = _result(served, movies, explain=True)
        if result.items or prompt:
            rows.append(FeedRow(key, title, result, prompt))
    return rows


# ------------------------------------------------------------------ movie page
def similar_movies(
    movie_id: int,
    *,
    n: int = DEFAULT_N,
    diversity: float | None = None,
    explain: bool = True,
    enriched: bool = False,
) -> FeedResult:
    """Movies like ``movie_id`` (404 ``not_found`` for an unknown movie)."""
    _movie_or_404(movie_id)
    return _similar(
        Serving.open(), movie_id, n=n, diversity=diversity, explain=explain,
        enriched=enriched,
    )  # fmt: skip


def _similar(
    serving: Serving,
    movie_id: int,
    *,
    n: int,
    diversity: float | None,
    explain: bool,
    enriched: bool = False,
) -> FeedResult:
    def fallback() -> tuple[list[int], str | None]:
        ids = catalog_selectors.genre_neighbour_ids(anchor_ids=[movie_id], n=n)
        return ids, "Shares genres with this movie"

    served = serving.serve(
        f"similar to movie {movie_id}",
        lambda engine: engine.similar(movie_id, n=n, diversity=diversity),
        fallback,
        cache_key=("similar", movie_id, n, diversity),
    )
    started = time.perf_counter()
    movies = catalog_selectors.movie_cards(served.ids, enriched=enriched)
    return _timed(
        _result(served, movies, explain),
        hydrate=1e3 * (time.perf_counter() - started),
    )


RELATION_TITLES = {
    "director": "From the same director",
    "collection": "From the same collection",
    "cast": "With the same lead cast",
    "genres": "In the same genres",
}


# the engine's knowledge-graph groups -> the API's relation names
_ENGINE_RELATIONS = {
    "same_director": "director",
    "same_collection": "collection",
    "lead_cast": "cast",
    "genres": "genres",
}


def _relation_ids(group: Any) -> list[int]:
    """Ids of one engine group: ``{"names", "items": [{"item_id", ...}]}``."""
    items = group.get("items", ()) if isinstance(group, Mapping) else group
    return [
        int(entry["item_id"] if isinstance(entry, Mapping) else entry)
        for entry in items or ()
    ]


def knowledge_graph(movie_id: int, *, n: int = DEFAULT_N) -> KnowledgeGraphResult:
    """Catalog neighbours of ``movie_id``: same director, collection, lead cast,
    genres (the engine's graph; the catalog tables as the fallback)."""
    _movie_or_404(movie_id)
    return _knowledge_graph(Serving.open(), movie_id, n=n)


def _engine_graph(
    engine: Any, movie_id: int, n: int
) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    raw = engine.knowledge_graph(movie_id, n=n)
    graph: dict[str, list[int]] = {}
    shared: dict[str, list[str]] = {}
    for engine_key, key in _ENGINE_RELATIONS.items():
        group = raw.get(engine_key) or {}
        graph[key] = _relation_ids(group)[:n]
        shared[key] = [str(name) for name in group.get("names", ())]
    return graph, shared


def _knowledge_graph(
    serving: Serving, movie_id: int, *, n: int
) -> KnowledgeGraphResult:
    started = time.perf_counter()
    answer = serving.ask(
        f"knowledge graph of movie {movie_id}",
        lambda engine: _engine_graph(engine, movie_id, n),
    )
    elapsed = round(1e3 * (time.perf_counter() - started), 3)
    meta: FeedMeta
    if is_answer(answer):
        graph, shared = answer
        meta = serving.db_meta(scorer="knowledge_graph", timings_ms={"engine": elapsed})
    else:
        graph = catalog_selectors.knowledge_graph_ids(movie_id=movie_id, n=n)
        shared = {}
        meta = serving.db_meta(
            scorer="database",
            fallback_reason=serving.fallback_reason(),
            timings_ms={"fallback": elapsed},
        )
    movies = catalog_selectors.movie_cards(
        [movie_id, *(i for ids in graph.values() for i in ids)]
    )
    relations = {
        key: [movies[i] for i in ids if i in movies and i != movie_id]
        for key, ids in graph.items()
    }
    return KnowledgeGraphResult(movies[movie_id], relations, shared, meta)


def movie_page_rows(movie_id: int, *, n: int = ROW_SIZE) -> list[FeedRow]:
    """ "More like this" and "From the same director / collection" for the
    movie page (404 ``not_found`` for an unknown movie)."""
    _movie_or_404(movie_id)
    serving = Serving.open()
    similar = _similar(serving, movie_id, n=n, diversity=None, explain=True)
    graph = _knowledge_graph(serving, movie_id, n=n)
    rows = [FeedRow("similar", "More like this", similar)]
    for key in ("director", "collection"):
        movies = graph.relations.get(key) or []
        if movies:
            names = graph.shared.get(key) or []
            title = RELATION_TITLES[key] + (f": {', '.join(names)}" if names else "")
            items = [FeedItem(m, None, title) for m in movies]
            rows.append(FeedRow(key, title, FeedResult(items, graph.meta)))
    return rows


# ------------------------------------------------- for analytics (audits, dashboards)
def active_artifact() -> dict[str, Any] | None:
    """The current artifact version: ``{"version", "path", "manifest"}`` (the
    manifest as a dict), or None when there is none."""
    from django.conf import settings

    from recommendations.serving.artifacts import ArtifactStore

    store = ArtifactStore(settings.APEX_ARTIFACTS_DIR)
    try:
        version = store.current_version()
    except ApplicationError:
        return None
    if version is None:
        return None
    return {
        "version": version,
        "path": store.path(version),
        "manifest": store.manifest(version).model_dump(mode="json"),
    }


def artifact_ensemble(*, path: Any) -> Any:
    """The PyTorch ensemble of an artifact version folder (what tier 1 serves),
    for offline evaluation."""
    from recommendations.engine.models.ensemble import Ensemble
    from recommendations.engine.serving import bundle

    return Ensemble.load(path / bundle.ENSEMBLE_DIR)


def artifact_item_ids(*, path: Any) -> Any:
    """The item ids (catalog ``Movie`` pks) of a version, in the model's order."""
    from recommendations.engine.serving import bundle

    return bundle.load_vocab(path / bundle.ITEMS_DIR / bundle.VOCAB_FILE)


def evaluation_interactions(*, dataset: str | None = None) -> Any:
    """What ``model_train`` trains on (``training_data.training_interactions``),
    for re-creating its held-out split."""
    from recommendations.training_data import training_interactions

    return training_interactions(dataset=dataset)


def artifact_versions(*, limit: int = 10) -> list[dict[str, Any]]:
    """The newest artifact versions with their metrics and checksum health."""
    from django.conf import settings

    from recommendations.serving.artifacts import ArtifactStore

    store = ArtifactStore(settings.APEX_ARTIFACTS_DIR)
    try:
        versions = store.versions()
        current = store.current_version()
    except ApplicationError:
        return []
    out = []
    for version in versions[-limit:][::-1]:
        try:
            manifest = store.manifest(version)
            report = store.verify(version)
            out.append(
                {
                    "version": version,
                    "created": manifest.created,
                    "current": version == current,
                    "healthy": report.ok,
                    "metrics": manifest.metrics,
                }
            )
        except ApplicationError as exc:
            out.append(
                {"version": version, "created": None, "current": version == current,
                 "healthy": False, "metrics": {}, "error": exc.message}
            )  # fmt: skip
    return out


def ensemble_weights_history(*, limit: int = 20) -> list[Any]:
    """The newest ensemble weight versions (newest first)."""
    from recommendations.models import EnsembleWeights

    return list(EnsembleWeights.objects.order_by("-version")[:limit])


def serving_status() -> dict[str, Any]:
    """This process' serving state (tier, loaded version); loads nothing."""
    from recommendations.serving.runtime import get_runtime

    return get_runtime().status()
