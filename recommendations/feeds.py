"""Request-level recommendation logic shared by the API and the pages.

Every list comes from the serving engine of the active artifact bundle
(``get_runtime().get().payload``, a ``ServingEngine``), which works on
external item ids = catalog ``Movie`` primary keys. This module adds what the
engine cannot know: the user's history from the interaction log, the catalog
rows behind the ids, and the failure policy.

Failure policy: missing or corrupt artifacts (the runtime raises), a payload
that is not an engine, or an engine call that raises never reach the caller.
The list is served from the database instead (popularity, genre overlap,
catalog relations), ``meta.fallback`` is true, ``meta.fallback_reason`` says
why, and exactly one WARNING is logged per failure. A movie the engine has
never seen (``UnknownItemError``: added after the artifacts were trained) is
expected, not a failure: it gets the same fallback with an INFO line.

Ids become ``Movie`` rows with one ``in_bulk`` query per page or response
(plus prefetches for genres, and credits where a response shows cast).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection
from django.db.models import OuterRef, Prefetch
from django.db.models.signals import m2m_changed, post_delete, post_save

from apex_site.errors import ApplicationError
from catalog.models import Credit, Genre, Movie
from recommendations import selectors
from recommendations.engine.errors import UnknownItemError
from recommendations.serving.result_cache import get_result_cache
from recommendations.serving.runtime import ServingBundle, get_runtime

logger = logging.getLogger(__name__)

DEFAULT_N = 10
ROW_SIZE = 12
COLD_START_DIVERSITY = 0.7
_CARD_FIELDS = (
    "id", "title", "year", "poster_path", "rating_mean", "rating_count", "tmdb_id",
)  # fmt: skip
_ENRICHED_FIELDS = (
    *_CARD_FIELDS, "overview", "trailer_key", "imdb_id", "vote_average",
    "collection__name", "collection_id",
)  # fmt: skip


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class FeedMeta:
    """How a list was produced (the API's ``meta``)."""

    tier: int | None
    tier_name: str | None
    fallback: bool
    fallback_reason: str | None
    gate_fired: bool
    scorer: str
    artifact_version: str | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    cached: bool = False


@dataclass(frozen=True)
class FeedItem:
    movie: Movie
    score: float | None
    reason: str | None


@dataclass(frozen=True)
class FeedResult:
    items: list[FeedItem]
    meta: FeedMeta

    @property
    def movie_ids(self) -> list[int]:
        return [item.movie.pk for item in self.items]


@dataclass(frozen=True)
class FeedRow:
    """One row of the home page or the movie page."""

    key: str
    title: str
    result: FeedResult
    prompt: str | None = None


@dataclass(frozen=True)
class KnowledgeGraphResult:
    movie: Movie
    relations: dict[str, list[Movie]]
    shared: dict[str, list[str]]  # per relation, what is shared (names)
    meta: FeedMeta


@dataclass(frozen=True)
class _Served:
    """An id list before hydration (engine output or database fallback)."""

    ids: list[int]
    scores: list[float | None]
    reasons: list[str | None]
    meta: FeedMeta


# ------------------------------------------------------------------ engine access
class EngineUnavailable(Exception):
    """No engine to ask: the runtime could not load one, or loaded no engine."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class _Serving:
    """What one request uses. The bundle is read once, so a reload mid-request
    cannot mix two versions; after the first failure the rest of the request
    (the other rows of a page) goes straight to the fallback, and the failure
    is logged once."""

    bundle: ServingBundle | None
    error: EngineUnavailable | None
    logged: bool = False

    @property
    def engine(self) -> Any:
        return None if self.bundle is None else self.bundle.payload

    def fail(self, reason: str, message: str) -> None:
        self.error = EngineUnavailable(reason, message)

    def warn_once(self, what: str) -> None:
        """The one WARNING of this request's serving failure."""
        if self.logged or self.error is None:
            return
        self.logged = True
        logger.warning(
            "recommendations: %s served from the database fallback (%s: %s)",
            what,
            self.error.reason,
            self.error,
        )


def _serving() -> _Serving:
    try:
        bundle = get_runtime().get()
    except ApplicationError as exc:
        return _Serving(None, EngineUnavailable(exc.code, exc.message))
    except Exception as exc:  # a bug in loading must not become a 500
        return _Serving(
            None, EngineUnavailable("serving_error", f"{type(exc).__name__}: {exc}")
        )
    if not callable(getattr(bundle.payload, "recommend", None)):
        return _Serving(
            None,
            EngineUnavailable(
                "no_engine",
                f"artifact version {bundle.version} loaded no serving engine",
            ),
        )
    return _Serving(bundle, None)


def _flag(flags: Any, name: str, default: Any = None) -> Any:
    if isinstance(flags, Mapping):
        return flags.get(name, default)
    return getattr(flags, name, default)


def _from_served(served: Any, bundle: ServingBundle, elapsed_ms: float) -> _Served:
    flags = getattr(served, "flags", None)
    ids = [int(i) for i in served.item_ids]
    scores = [float(s) for s in served.scores]
    reasons = list(getattr(served, "reasons", None) or [None] * len(ids))
    timings = {
        str(k): round(float(v), 3)
        for k, v in (getattr(served, "timings_ms", None) or {}).items()
    }
    timings.setdefault("engine", round(elapsed_ms, 3))  # the engine's own clock
    return _Served(
        ids,
        scores,
        reasons,
        FeedMeta(
            tier=bundle.tier.tier,
            tier_name=bundle.tier.name,
            fallback=bool(_flag(flags, "fallback", False)),
            fallback_reason=None,
            gate_fired=bool(_flag(flags, "gate_fired", False)),
            scorer=str(_flag(flags, "scorer", "ensemble")),
            artifact_version=bundle.version,
            timings_ms=timings,
        ),
    )


def _fallback_meta(serving: _Serving, reason: str, elapsed_ms: float) -> FeedMeta:
    return _db_meta(
        serving,
        scorer="database",
        fallback_reason=reason,
        timings_ms={"fallback": round(elapsed_ms, 3)},
    )


def _serve(
    serving: _Serving,
    what: str,
    call: Callable[[Any], Any],
    fallback: Callable[[], tuple[list[int], str | None]],
    cache_key: tuple[Any, ...] | None = None,
) -> _Served:
    """Ask the engine; on any failure serve ``fallback()`` from the database.

    ``fallback`` returns the ids and the one reason shown for all of them.
    ``cache_key``: everything the engine's answer depends on besides the
    bundle; the answer is then served from the per-process result cache
    (``recommendations.serving.result_cache``) while the bundle stays.
    """
    started = time.perf_counter()
    reason = "unknown_item"
    if serving.error is None:
        assert serving.bundle is not None
        cache = get_result_cache() if cache_key is not None else None
        if cache is not None:
            hit = cache.get(serving.bundle, cache_key)
            if hit is not None:
                elapsed = round(1e3 * (time.perf_counter() - started), 3)
                return replace(
                    hit,
                    meta=replace(hit.meta, cached=True, timings_ms={"cache": elapsed}),
                )
        try:
            served = _from_served(
                call(serving.engine),
                serving.bundle,
                1e3 * (time.perf_counter() - started),
            )
            if cache is not None and not served.meta.fallback:
                cache.put(serving.bundle, cache_key, served)
            return served
        except UnknownItemError as exc:  # expected: not a failure
            logger.info("recommendations: %s: unknown to the engine (%s)", what, exc)
        except Exception as exc:  # never a 500: any engine failure falls back
            serving.fail("engine_error", f"engine raised {type(exc).__name__}: {exc}")
    if serving.error is not None:
        reason = serving.error.reason
        serving.warn_once(what)
    fb_started = time.perf_counter()
    ids, why = fallback()
    meta = _fallback_meta(serving, reason, 1e3 * (time.perf_counter() - fb_started))
    return _Served(ids, [None] * len(ids), [why] * len(ids), meta)


# ------------------------------------------------------------------ hydration
def _credits_prefetch() -> Prefetch:
    return Prefetch(
        "credits",
        queryset=Credit.objects.select_related("person").order_by("role", "order"),
    )


class _CardCache:
    """Card rows (``_CARD_FIELDS`` + genre names) kept per serving process.

    Why: hydrating a served list was a third of a tier-3 request's time
    (one ``in_bulk`` with a genre array subquery, ~2-3 ms on this machine)
    for rows that change rarely, while a process serves the same catalog
    over and over. What: ``{id: Movie}`` of card rows already read; the
    whole cache is dropped on any ``Movie`` save/delete or genre change
    (signals, below) and at the latest ``TTL_S`` seconds after it was
    started, which bounds staleness of writes that bypass signals
    (``QuerySet.update``/``bulk_create``, e.g. the loaders' rating numbers).
    Ids it does not hold are read from the database as before and added.
    Cached rows are shared between requests and threads: readers only (the
    serializers read fields); a dict swap on clear needs no lock.
    """

    TTL_S = 60.0
    MAX_ROWS = 50_000

    def __init__(self) -> None:
        self._rows: dict[int, Movie] = {}
        self._started = time.monotonic()

    def clear(self, *_args: Any, **_kwargs: Any) -> None:
        self._rows = {}
        self._started = time.monotonic()

    def split(self, wanted: list[int]) -> tuple[dict[int, Movie], list[int]]:
        """The cached rows among ``wanted`` and the ids still to read."""
        if time.monotonic() - self._started > self.TTL_S:
            self.clear()
        rows = self._rows
        hit = {i: rows[i] for i in wanted if i in rows}
        return hit, [i for i in wanted if i not in hit]

    def add(self, movies: Mapping[int, Movie]) -> None:
        if len(self._rows) + len(movies) > self.MAX_ROWS:
            self.clear()
        self._rows.update(movies)


_cards = _CardCache()
post_save.connect(_cards.clear, sender=Movie, dispatch_uid="feeds-cards-save")
post_delete.connect(_cards.clear, sender=Movie, dispatch_uid="feeds-cards-delete")
m2m_changed.connect(
    _cards.clear, sender=Movie.genres.through, dispatch_uid="feeds-cards-genres"
)


def hydrate(ids: Iterable[int], *, enriched: bool = False) -> dict[int, Movie]:
    """``{id: Movie}`` for every id still in the catalog.

    Card rows come from the per-process ``_CardCache`` where it holds them;
    the rest (and every ``enriched`` request) from one ``in_bulk`` query;
    genre names ride along as ``genre_names_agg`` (read through
    ``Movie.genre_names``): in the same query on PostgreSQL (an array
    subquery), one ``values_list`` query elsewhere, which costs a third of a
    ``prefetch_related("genres")`` (no Genre instances). ``enriched`` adds the
    collection (joined) and the credits (prefetched) for cast and directors.
    """
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    if enriched:
        return _read_movies(wanted, enriched=True)
    cached, missing = _cards.split(wanted)
    if missing:
        fresh = _read_movies(missing, enriched=False)
        _cards.add(fresh)
        cached.update(fresh)
    return cached


def _read_movies(wanted: list[int], *, enriched: bool) -> dict[int, Movie]:
    """``hydrate``'s database read (see there)."""
    rows = Movie.objects.all()
    if enriched:
        rows = (
            rows.select_related("collection")
            .only(*_ENRICHED_FIELDS)
            .prefetch_related(_credits_prefetch())
        )
    else:
        rows = rows.only(*_CARD_FIELDS)
    postgres = connection.vendor == "postgresql"
    if postgres:
        names = Genre.objects.filter(movies=OuterRef("pk")).order_by("name")
        rows = rows.annotate(genre_names_agg=ArraySubquery(names.values("name")))
    movies = rows.in_bulk(wanted)
    if not postgres:
        genres: dict[int, list[str]] = {movie_id: [] for movie_id in movies}
        through = Movie.genres.through.objects.filter(movie_id__in=list(movies))
        for movie_id, name in through.order_by("genre__name").values_list(
            "movie_id", "genre__name"
        ):
            genres[movie_id].append(name)
        for movie_id, movie in movies.items():
            movie.genre_names_agg = genres[movie_id]
    return movies


def _result(served: _Served, movies: Mapping[int, Movie], explain: bool) -> FeedResult:
    items = [
        FeedItem(
            movie=movies[movie_id],
            score=score,
            reason=reason if explain else None,
        )
        for movie_id, score, reason in zip(
            served.ids, served.scores, served.reasons, strict=True
        )
        if movie_id in movies
    ]
    return FeedResult(items, served.meta)


# ------------------------------------------------------------------ user feed
def _user_served(
    serving: _Serving,
    history: list[int],
    *,
    n: int,
    diversity: float | None,
    exclude_seen: bool,
    explain: bool,
    exclude_ids: Iterable[int] = (),
    what: str = "user feed",
) -> _Served:
    excluded = list(exclude_ids)

    def fallback() -> tuple[list[int], str | None]:
        skip = set(excluded) | (set(history) if exclude_seen else set())
        ids = selectors.genre_neighbour_ids(
            anchor_ids=history[-10:], n=n, exclude_ids=skip
        )
        return ids, "Popular in genres you watch" if history else "Popular right now"

    return _serve(
        serving,
        what,
        lambda engine: engine.recommend(
            history,
            n=n,
            diversity=diversity,
            exclude_seen=exclude_seen,
            exclude_ids=tuple(excluded),
            explain=explain,
        ),
        fallback,
        cache_key=(
            "user", tuple(history), n, diversity, exclude_seen, explain,
            tuple(sorted(excluded)),
        ),
    )  # fmt: skip


def feed_for(
    user: Any,
    *,
    n: int = DEFAULT_N,
    diversity: float | None = None,
    exclude_seen: bool = True,
    explain: bool = True,
) -> FeedResult:
    """The user's recommendations from their current history (the log is read
    on every call, so a new rating shows on the next request)."""
    started = time.perf_counter()
    history = selectors.user_history_ids(user_id=user.pk)
    history_ms = 1e3 * (time.perf_counter() - started)
    served = _user_served(
        _serving(),
        history,
        n=n,
        diversity=diversity,
        exclude_seen=exclude_seen,
        explain=explain,
    )
    started = time.perf_counter()
    result = _result(served, hydrate(served.ids), explain)
    timings = {
        **result.meta.timings_ms,
        "history": round(history_ms, 3),
        "hydrate": round(1e3 * (time.perf_counter() - started), 3),
    }
    return FeedResult(result.items, replace(result.meta, timings_ms=timings))


# ------------------------------------------------------------------ home page
def _diverse(ids: Sequence[int], movies: Mapping[int, Movie], n: int) -> list[int]:
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


def home_rows(user: Any, *, n: int = ROW_SIZE) -> list[FeedRow]:
    """The signed-in home page: rows from the user's current history.

    With history: for you; because you watched <latest>; trending; hidden
    gems from the long tail. Without: a cold-start row (popular movies spread
    over genres) with a prompt to rate, and trending. Rows do not repeat each
    other's movies. One WARNING per request when the engine is unavailable.
    """
    serving = _serving()
    history = selectors.user_history_ids(user_id=user.pk)
    seen = set(history)
    planned: list[tuple[str, str, _Served, str | None]] = []
    shown: set[int] = set()
    movies: dict[int, Movie] = {}

    def add(key: str, title: str, served: _Served, prompt: str | None = None) -> None:
        keep = [i for i, movie_id in enumerate(served.ids) if movie_id not in shown][:n]
        served = _Served(
            [served.ids[i] for i in keep],
            [served.scores[i] for i in keep],
            [served.reasons[i] for i in keep],
            served.meta,
        )
        shown.update(served.ids)
        planned.append((key, title, served, prompt))

    if history:
        add(
            "for_you",
            "For you",
            _user_served(serving, history, n=n, diversity=None, exclude_seen=True,
                         explain=True, what="for-you row"),
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
            return selectors.popular_ids(n=pool), "Popular right now"

        cold = _serve(
            serving,
            "cold-start row",
            lambda engine: engine.popular(pool),
            cold_fallback,
        )
        movies.update(hydrate(cold.ids))  # the genre spread needs the genres now
        add(
            "cold_start",
            "Popular picks to start with",
            _reordered(cold, _diverse(cold.ids, movies, n)),
            prompt="Rate a few movies you have seen and this page becomes yours.",
        )
    trending = [i for i in selectors.trending_ids(n=n * 4) if i not in seen]
    add(
        "trending",
        "Trending now",
        _Served(
            trending,
            [None] * len(trending),
            ["Trending"] * len(trending),
            _db_meta(serving),
        ),
    )
    if history:
        tail_excluded = seen | shown | selectors.head_ids()

        def gems_fallback() -> tuple[list[int], str | None]:
            return (
                selectors.long_tail_ids(n=n, exclude_ids=seen | shown),
                "A well-rated film few people have found",
            )

        add(
            "hidden_gems",
            "Hidden gems",
            _serve(
                serving,
                "hidden-gems row",
                lambda engine: engine.recommend(
                    history, n=n, exclude_seen=True,
                    exclude_ids=tuple(tail_excluded), explain=True,
                ),
                gems_fallback,
            ),
        )  # fmt: skip
    wanted = [i for _, _, served, _ in planned for i in served.ids] + history[-1:]
    movies.update(hydrate(i for i in wanted if i not in movies))
    rows = []
    for key, title, served, prompt in planned:
        if key == "because" and history[-1] in movies:
            title = f"Because you watched {movies[history[-1]].title}"
        result = _result(served, movies, explain=True)
        if result.items or prompt:
            rows.append(FeedRow(key, title, result, prompt))
    return rows


def _reordered(served: _Served, ids: list[int]) -> _Served:
    index = {movie_id: i for i, movie_id in enumerate(served.ids)}
    return _Served(
        ids,
        [served.scores[index[i]] for i in ids],
        [served.reasons[index[i]] for i in ids],
        served.meta,
    )


def _db_meta(
    serving: _Serving,
    *,
    scorer: str = "trending",
    fallback_reason: str | None = None,
    timings_ms: dict[str, float] | None = None,
) -> FeedMeta:
    """Meta of a list served from the database (trending, or the fallback
    when ``fallback_reason`` is given), not by the engine."""
    bundle = serving.bundle
    return FeedMeta(
        tier=bundle.tier.tier if bundle else None,
        tier_name=bundle.tier.name if bundle else None,
        fallback=fallback_reason is not None,
        fallback_reason=fallback_reason,
        gate_fired=False,
        scorer=scorer,
        artifact_version=bundle.version if bundle else None,
        timings_ms=timings_ms or {},
    )


# ------------------------------------------------------------------ movie page
def _movie_or_404(movie_id: int) -> None:
    if not Movie.objects.filter(pk=movie_id).exists():
        raise ApplicationError("No such movie.", code="not_found", status_code=404)


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
        _serving(), movie_id, n=n, diversity=diversity, explain=explain,
        enriched=enriched,
    )  # fmt: skip


def _similar(
    serving: _Serving,
    movie_id: int,
    *,
    n: int,
    diversity: float | None,
    explain: bool,
    enriched: bool = False,
) -> FeedResult:
    served = _similar_served(serving, movie_id, n=n, diversity=diversity)
    started = time.perf_counter()
    result = _result(served, hydrate(served.ids, enriched=enriched), explain)
    timings = {
        **result.meta.timings_ms,
        "hydrate": round(1e3 * (time.perf_counter() - started), 3),
    }
    return FeedResult(result.items, replace(result.meta, timings_ms=timings))


def _similar_served(
    serving: _Serving, movie_id: int, *, n: int, diversity: float | None
) -> _Served:
    def fallback() -> tuple[list[int], str | None]:
        ids = selectors.genre_neighbour_ids(anchor_ids=[movie_id], n=n)
        return ids, "Shares genres with this movie"

    return _serve(
        serving,
        f"similar to movie {movie_id}",
        lambda engine: engine.similar(movie_id, n=n, diversity=diversity),
        fallback,
        cache_key=("similar", movie_id, n, diversity),
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
    return _knowledge_graph(_serving(), movie_id, n=n)


def _knowledge_graph(
    serving: _Serving, movie_id: int, *, n: int
) -> KnowledgeGraphResult:
    started = time.perf_counter()
    graph: dict[str, list[int]] | None = None
    shared: dict[str, list[str]] = {}
    reason = "unknown_item"
    if serving.error is None:
        try:
            raw = serving.engine.knowledge_graph(movie_id, n=n)
            graph, shared = {}, {}
            for engine_key, key in _ENGINE_RELATIONS.items():
                group = raw.get(engine_key) or {}
                graph[key] = _relation_ids(group)[:n]
                shared[key] = [str(name) for name in group.get("names", ())]
        except UnknownItemError as exc:  # expected: not a failure
            graph = None
            logger.info("recommendations: knowledge graph of %s: %s", movie_id, exc)
        except Exception as exc:
            graph = None
            serving.fail("engine_error", f"engine raised {type(exc).__name__}: {exc}")
    if serving.error is not None:
        reason = serving.error.reason
        serving.warn_once(f"knowledge graph of movie {movie_id}")
    elapsed = 1e3 * (time.perf_counter() - started)
    if graph is not None and serving.bundle is not None:
        bundle = serving.bundle
        meta = FeedMeta(
            tier=bundle.tier.tier,
            tier_name=bundle.tier.name,
            fallback=False,
            fallback_reason=None,
            gate_fired=False,
            scorer="knowledge_graph",
            artifact_version=bundle.version,
            timings_ms={"engine": round(elapsed, 3)},
        )
    else:
        graph = selectors.knowledge_graph_ids(movie_id=movie_id, n=n)
        shared = {}
        meta = _fallback_meta(serving, reason, elapsed)
    movies = hydrate([movie_id, *(i for ids in graph.values() for i in ids)])
    relations = {
        key: [movies[i] for i in ids if i in movies and i != movie_id]
        for key, ids in graph.items()
    }
    return KnowledgeGraphResult(movies[movie_id], relations, shared, meta)


def movie_page_rows(movie_id: int, *, n: int = ROW_SIZE) -> list[FeedRow]:
    """ "More like this" and "From the same director / collection" for the
    movie page (404 ``not_found`` for an unknown movie)."""
    _movie_or_404(movie_id)
    serving = _serving()
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


# ------------------------------------------------------------------ live feed
def feed_payload(result: FeedResult) -> dict[str, Any]:
    """A feed as plain JSON for the websocket (``services.feed_push``)."""
    meta = result.meta
    return {
        "items": [
            {
                "id": item.movie.pk,
                "title": item.movie.title,
                "year": item.movie.year,
                "score": item.score,
                "reason": item.reason,
            }
            for item in result.items
        ],
        "meta": {
            "tier": meta.tier,
            "fallback": meta.fallback,
            "fallback_reason": meta.fallback_reason,
            "gate_fired": meta.gate_fired,
            "scorer": meta.scorer,
            "artifact_version": meta.artifact_version,
        },
    }


def push_feed(user: Any, *, n: int = ROW_SIZE) -> dict[str, Any]:
    """Recompute the user's feed and push it to their open tabs after the
    current transaction commits (call it after recording an event)."""
    from recommendations.services import feed_push

    payload = feed_payload(feed_for(user, n=n))
    feed_push(user_id=user.pk, payload=payload)
    return payload
