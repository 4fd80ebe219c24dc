"""Reads of the catalog: lists, details, keyword search, and what the
recommendation service needs (movie cards, popularity, genre neighbours,
catalog relations, item facts for a serving bundle)."""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.postgres.expressions import ArraySubquery
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.core.cache import cache
from django.db import connection
from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    When,
)
from django.db.models import Value as V
from django.db.models.functions import Coalesce
from django.urls import get_urlconf, reverse

from apex_site.errors import ApplicationError, ErrorCode
from catalog.models import Credit, Genre, Movie

TMDB_IMAGE_BASE = "https://image.tmdb.org/t/p/w342"

# Sort keys offered to people and API callers. "rating" is a Bayesian average
# (prior: 10 ratings of 3.5 stars) so a single 5-star vote does not top the list.
ORDERINGS = ("popularity", "rating", "year", "-year", "title")
_PRIOR_COUNT, _PRIOR_MEAN = 10.0, 3.5


# What lists, search results and cards show. Loading only these keeps the
# tsvector and overview (most of a row's bytes) out of list queries.
SUMMARY_FIELDS = (
    "id", "title", "year", "poster_path", "rating_mean", "rating_count", "tmdb_id",
    "movielens_id",
)  # fmt: skip


def _summaries(movies: QuerySet[Movie]) -> QuerySet[Movie]:
    movies = movies.only(*SUMMARY_FIELDS)
    if connection.vendor == "postgresql":
        # Genre names in the same query: one round trip instead of two, which
        # is a third of a search request's database time.
        names = Genre.objects.filter(movies=OuterRef("pk")).order_by("name")
        return movies.annotate(genre_names_agg=ArraySubquery(names.values("name")))
    return movies.prefetch_related(
        Prefetch("genres", queryset=Genre.objects.only("id", "name", "slug"))
    )


def genre_list() -> QuerySet[Genre]:
    return Genre.objects.all()


def decade_list() -> list[int]:
    years = Movie.objects.filter(year__isnull=False).values_list("year", flat=True)
    return sorted({(y // 10) * 10 for y in years.distinct()})


def movie_list(
    *, genre: str | None = None, decade: int | None = None, ordering: str = "popularity"
) -> QuerySet[Movie]:
    if ordering not in ORDERINGS:
        raise ApplicationError(
            f"Unknown ordering {ordering!r}.",
            detail={"ordering": [f"One of: {', '.join(ORDERINGS)}."]},
        )
    movies = _summaries(Movie.objects.all())
    if genre:
        movies = movies.filter(genres__slug=genre)
    if decade is not None:
        if decade % 10:
            raise ApplicationError(
                "A decade is a year ending in 0, e.g. 1990.",
                detail={"decade": ["Must be a multiple of 10."]},
            )
        movies = movies.filter(year__gte=decade, year__lte=decade + 9)
    if ordering == "popularity":
        return movies.order_by("-rating_count", "id")
    if ordering == "rating":
        score = (
            Coalesce(F("rating_mean"), V(0.0)) * F("rating_count")
            + V(_PRIOR_COUNT * _PRIOR_MEAN)
        ) / (F("rating_count") + V(_PRIOR_COUNT))
        return movies.annotate(score=score).order_by("-score", "-rating_count", "id")
    if ordering == "year":
        return movies.order_by(F("year").asc(nulls_last=True), "id")
    if ordering == "-year":
        return movies.order_by(F("year").desc(nulls_last=True), "id")
    return movies.order_by("title", "id")


def movie_detail(*, movie_id: int) -> Movie:
    movie = (
        Movie.objects.select_related("collection")
        .prefetch_related(
            "genres",
            "keywords",
            Prefetch(
                "credits",
                queryset=Credit.objects.select_related("person").order_by(
                    "role", "order"
                ),
            ),
        )
        .filter(pk=movie_id)
        .first()
    )
    if movie is None:
        raise ApplicationError(
            "No such movie.", code=ErrorCode.NOT_FOUND, status_code=404
        )
    return movie


def movie_directors(movie: Movie) -> list[str]:
    return [c.person.name for c in movie.credits.all() if c.role == "director"]


def movie_cast(movie: Movie) -> list[str]:
    return [c.person.name for c in movie.credits.all() if c.role == "cast"]


def poster_url(movie: Movie) -> str:
    """TMDB's poster when enrichment found one, else our SVG placeholder."""
    if movie.poster_path:
        return f"{TMDB_IMAGE_BASE}{movie.poster_path}"
    return _placeholder_url(movie.pk)


_PLACEHOLDER_SENTINEL = 918273645


def _placeholder_url(movie_id: int) -> str:
    """``reverse("catalog:poster", args=[movie_id])`` without resolving the
    URL pattern for every card (~20 us each, ten cards a response): the
    pattern is reversed once per URL configuration and the id put in."""
    prefix_suffix = _placeholder_parts.get(get_urlconf())
    if prefix_suffix is None:
        url = reverse("catalog:poster", args=[_PLACEHOLDER_SENTINEL])
        prefix_suffix = tuple(url.split(str(_PLACEHOLDER_SENTINEL), 1))
        _placeholder_parts[get_urlconf()] = prefix_suffix
    prefix, suffix = prefix_suffix
    return f"{prefix}{movie_id}{suffix}"


_placeholder_parts: dict[str | None, tuple[str, ...]] = {}


def movies_by_ids(ids: list[int]) -> list[Movie]:
    """Movies in the order of ``ids``; ids no longer in the catalog are dropped."""
    found = _summaries(Movie.objects.all()).in_bulk(ids)
    return [found[i] for i in ids if i in found]


# ------------------------------------------------------------------ search

_TOKEN = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_TOKENS = 8


@dataclass(frozen=True)
class SearchHit:
    movie: Movie
    score: float


def _tokens(q: str) -> list[str]:
    return _TOKEN.findall(q.lower())[:MAX_QUERY_TOKENS]


def movie_search(*, q: str, limit: int = 20) -> list[SearchHit]:
    """Keyword search: PostgreSQL full text with prefixes, else a LIKE fallback."""
    tokens = _tokens(q)
    if not tokens:
        return []
    if connection.vendor == "postgresql":
        return _search_postgres(tokens, limit)
    return _search_fallback(tokens, q.strip(), limit)


def _search_postgres(tokens: list[str], limit: int) -> list[SearchHit]:
    # Every word must match, the last one (or every one) as a prefix so results
    # appear while typing: "star wa" finds "Star Wars". Tokens are \w+ only,
    # so nothing in them can act as tsquery syntax.
    raw = " & ".join(f"{t}:*" for t in tokens)
    query = SearchQuery(raw, search_type="raw", config="english")
    rows = (
        _summaries(Movie.objects.filter(search_vector=query))
        .annotate(rank=SearchRank(F("search_vector"), query, cover_density=True))
        .order_by("-rank", "-rating_count", "id")[:limit]
    )
    return [SearchHit(movie=m, score=float(m.rank)) for m in rows]


def _search_fallback(tokens: list[str], phrase: str, limit: int) -> list[SearchHit]:
    """SQLite: every word in the title, or every (whole, 4+ letter) word in the
    overview; title hits rank first. Short fragments only match titles, else
    "wa" would match half the plots while someone types "star wa"."""
    in_title = Q()
    in_overview = Q()
    for t in tokens:
        in_title &= Q(title__icontains=t)
        in_overview &= Q(overview__icontains=t)
    anywhere = in_title
    if all(len(t) >= 4 for t in tokens):
        anywhere |= in_overview
    rank = Case(
        When(title__istartswith=phrase, then=V(3)),
        When(in_title, then=V(2)),
        default=V(1),
        output_field=IntegerField(),
    )
    rows = (
        _summaries(Movie.objects.filter(anywhere))
        .annotate(rank=rank)
        .order_by("-rank", "-rating_count", "id")[:limit]
    )
    return [SearchHit(movie=m, score=float(m.rank)) for m in rows]


def movie_documents() -> list[tuple[int, str]]:
    """``(movie_id, text)`` for every movie, the input of the semantic index."""
    from catalog.search.semantic import movie_document

    movies = Movie.objects.prefetch_related("genres", "keywords").order_by("id")
    return [
        (
            m.pk,
            movie_document(
                m.title,
                m.year,
                [g.name for g in m.genres.all()],
                [k.name for k in m.keywords.all()],
                m.overview,
            ),
        )
        for m in movies.iterator(chunk_size=2000)
    ]


def movie_semantic_search(*, q: str, limit: int = 20) -> list[SearchHit]:
    from catalog.search.semantic import get_index

    if not q.strip():
        return []
    hits = get_index().search(q, k=limit)
    movies = {m.pk: m for m in movies_by_ids([movie_id for movie_id, _ in hits])}
    return [
        SearchHit(movie=movies[movie_id], score=score)
        for movie_id, score in hits
        if movie_id in movies
    ]


def movie_exists(*, movie_id: int) -> bool:
    return Movie.objects.filter(pk=movie_id).exists()


def movie_ids_by_field(*, field: str, values: Iterable[int]) -> dict[int, int]:
    """``{value: Movie pk}`` for the movies whose ``field`` (``pk``,
    ``ml100k_id`` or ``movielens_id``) is one of ``values``."""
    if field not in ("pk", "ml100k_id", "movielens_id"):
        raise ValueError(f"not a movie id field: {field!r}")
    values = list(values)
    return dict(
        Movie.objects.filter(**{f"{field}__in": values}).values_list(field, "pk")
    )


# ------------------------------------------------------------------ cards
_CARD_FIELDS = (
    "id", "title", "year", "poster_path", "rating_mean", "rating_count", "tmdb_id",
)  # fmt: skip
_ENRICHED_FIELDS = (
    *_CARD_FIELDS, "overview", "trailer_key", "imdb_id", "vote_average",
    "collection__name", "collection_id",
)  # fmt: skip


class MovieCardCache:
    """Card rows (``_CARD_FIELDS`` + genre names) kept per serving process.

    Why: hydrating a served list was a third of a tier-3 request's time
    (one ``in_bulk`` with a genre array subquery, ~2-3 ms on this machine)
    for rows that change rarely, while a process serves the same catalog
    over and over. What: ``{id: Movie}`` of card rows already read; the
    whole cache is dropped on any ``Movie`` save/delete or genre change
    (signals connected in ``CatalogConfig.ready``) and at the latest
    ``TTL_S`` seconds after it was started, which bounds staleness of writes
    that bypass signals (``QuerySet.update``/``bulk_create``, e.g. the
    loaders' rating numbers). Ids it does not hold are read from the
    database and added. Cached rows are shared between requests and threads:
    readers only (the serializers read fields); a dict swap on clear needs no
    lock.
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


movie_card_cache = MovieCardCache()


def movie_cards(ids: Iterable[int], *, enriched: bool = False) -> dict[int, Movie]:
    """``{id: Movie}`` for every id still in the catalog.

    Card rows come from the per-process ``movie_card_cache`` where it holds
    them; the rest (and every ``enriched`` request) from one ``in_bulk``
    query; genre names ride along as ``genre_names_agg`` (read through
    ``Movie.genre_names``): in the same query on PostgreSQL (an array
    subquery), one ``values_list`` query elsewhere, which costs a third of a
    ``prefetch_related("genres")`` (no Genre instances). ``enriched`` adds the
    collection (joined) and the credits (prefetched) for cast and directors.
    """
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    if enriched:
        return _read_cards(wanted, enriched=True)
    cached, missing = movie_card_cache.split(wanted)
    if missing:
        fresh = _read_cards(missing, enriched=False)
        movie_card_cache.add(fresh)
        cached.update(fresh)
    return cached


def _read_cards(wanted: list[int], *, enriched: bool) -> dict[int, Movie]:
    """``movie_cards``' database read (see there)."""
    rows = Movie.objects.all()
    if enriched:
        rows = (
            rows.select_related("collection")
            .only(*_ENRICHED_FIELDS)
            .prefetch_related(
                Prefetch(
                    "credits",
                    queryset=Credit.objects.select_related("person").order_by(
                        "role", "order"
                    ),
                )
            )
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


# ------------------------------------------------------------------ popularity
Ids = set[int] | frozenset[int]
HEAD_SHARE = 0.2  # the top 20 % by rating_count is the "head"; the rest, the tail
_CACHE_SECONDS = 300


def popular_ids(*, n: int, exclude_ids: Ids = frozenset()) -> list[int]:
    """Most rated movies first (the ``movie_popularity_idx`` index)."""
    rows = Movie.objects.order_by("-rating_count", "id")
    if exclude_ids:
        rows = rows.exclude(pk__in=exclude_ids)
    return list(rows.values_list("id", flat=True)[:n])


def movie_rating_counts() -> dict[int, int]:
    """``{movie id: rating_count}`` for the whole catalog (one query)."""
    return dict(Movie.objects.values_list("id", "rating_count"))


def head_ids() -> frozenset[int]:
    """Movies in the top ``HEAD_SHARE`` by ``rating_count`` (cached 5 minutes).

    Excluding these from a request leaves the long tail (hidden gems).
    """
    key = "catalog:head-ids"
    cached = cache.get(key)
    if cached is not None:
        return cached
    total = Movie.objects.count()
    size = math.ceil(total * HEAD_SHARE)
    head = frozenset(
        Movie.objects.order_by("-rating_count", "id").values_list("id", flat=True)[
            :size
        ]
    )
    cache.set(key, head, _CACHE_SECONDS)
    return head


def long_tail_ids(*, n: int, exclude_ids: Ids = frozenset()) -> list[int]:
    """The best-rated movies outside the head, for the fallback gems row.

    Ordered by mean rating among movies with at least a few ratings, then by
    rating count, so "hidden gem" means good and little known.
    """
    excluded = set(head_ids()) | set(exclude_ids)
    rows = (
        Movie.objects.exclude(pk__in=excluded)
        .filter(rating_count__gte=3)
        .order_by("-rating_mean", "-rating_count", "id")
    )
    ids = list(rows.values_list("id", flat=True)[:n])
    if len(ids) < n:  # tiny catalogs: any tail movie
        ids += list(
            Movie.objects.exclude(pk__in=excluded | set(ids))
            .order_by("-rating_count", "id")
            .values_list("id", flat=True)[: n - len(ids)]
        )
    return ids


# ------------------------------------------------------------------ relations
def genre_neighbour_ids(
    *,
    anchor_ids: list[int],
    n: int,
    exclude_ids: Ids = frozenset(),
) -> list[int]:
    """Movies sharing the most genres with ``anchor_ids``, popular first.

    The database-only content fallback: one query counting shared genres.
    """
    if not anchor_ids:
        return popular_ids(n=n, exclude_ids=exclude_ids)
    genres = Movie.genres.through.objects.filter(movie_id__in=anchor_ids).values(
        "genre_id"
    )
    rows = (
        Movie.objects.filter(genres__in=genres)
        .exclude(pk__in=set(exclude_ids) | set(anchor_ids))
        .annotate(shared=Count("genres"))
        .order_by("-shared", "-rating_count", "id")
        .values_list("id", flat=True)[:n]
    )
    ids = list(rows)
    if len(ids) < n:
        ids += popular_ids(
            n=n - len(ids), exclude_ids=set(exclude_ids) | set(anchor_ids) | set(ids)
        )
    return ids


def knowledge_graph_ids(*, movie_id: int, n: int) -> dict[str, list[int]]:
    """Same director / collection / lead cast / genres, from the catalog tables
    (the recommendation service's fallback for the engine's graph): four small
    queries."""
    movie = Movie.objects.filter(pk=movie_id).values("collection_id").first()
    if movie is None:
        return {}
    others = Movie.objects.exclude(pk=movie_id).order_by("-rating_count", "id")
    credits = Credit.objects.filter(movie_id=movie_id)
    directors = credits.filter(role=Credit.Role.DIRECTOR).values("person_id")
    lead_cast = credits.filter(role=Credit.Role.CAST, order__lt=3).values("person_id")
    return {
        "director": list(
            others.filter(
                credits__role=Credit.Role.DIRECTOR, credits__person_id__in=directors
            )
            .distinct()
            .values_list("id", flat=True)[:n]
        ),
        "collection": (
            list(
                others.filter(collection_id=movie["collection_id"]).values_list(
                    "id", flat=True
                )[:n]
            )
            if movie["collection_id"]
            else []
        ),
        "cast": list(
            others.filter(
                credits__role=Credit.Role.CAST, credits__person_id__in=lead_cast
            )
            .distinct()
            .values_list("id", flat=True)[:n]
        ),
        "genres": genre_neighbour_ids(anchor_ids=[movie_id], n=n),
    }


# ------------------------------------------------------------------ item facts
def movie_facts(*, movie_ids: Sequence[Any], lead_cast: int) -> dict[str, Any]:
    """Per-movie facts, aligned with ``movie_ids``, for a serving bundle's item
    metadata: titles, release years, genres, directors, the top
    ``lead_cast`` billed cast, collection, TMDB vote average / count,
    overview and keywords, plus person and collection names. A key missing
    from the catalog gets its id as title and empty facts. Five queries in
    all (movies, genres, keywords, credits, collections), whatever the
    catalog size."""
    ids = [int(i) for i in movie_ids]
    movies = {
        m.pk: m
        for m in Movie.objects.filter(pk__in=ids).select_related("collection").only(
            "pk", "title", "year", "release_date", "overview", "vote_average",
            "vote_count", "collection__id", "collection__name",
        )
    }  # fmt: skip
    genres: dict[int, list[str]] = defaultdict(list)
    for movie_id, name in Movie.genres.through.objects.filter(
        movie_id__in=ids
    ).values_list("movie_id", "genre__name"):
        genres[movie_id].append(name)
    keywords: dict[int, list[str]] = defaultdict(list)
    for movie_id, name in Movie.keywords.through.objects.filter(
        movie_id__in=ids
    ).values_list("movie_id", "keyword__name"):
        keywords[movie_id].append(name)
    directors: dict[int, list[int]] = defaultdict(list)
    cast: dict[int, list[int]] = defaultdict(list)
    person_names: dict[int, str] = {}
    credits = (
        Credit.objects.filter(
            movie_id__in=ids, role__in=(Credit.Role.DIRECTOR, Credit.Role.CAST)
        )
        .order_by("movie_id", "role", "order", "id")
        .values_list("movie_id", "role", "person_id", "person__name")
    )
    for movie_id, role, person_id, name in credits:
        if role == Credit.Role.DIRECTOR:
            directors[movie_id].append(person_id)
        elif len(cast[movie_id]) < lead_cast:
            cast[movie_id].append(person_id)
        else:
            continue
        person_names[person_id] = name
    collection_names = {
        m.collection.id: m.collection.name
        for m in movies.values()
        if m.collection is not None
    }

    def fact(pk: int, attr: str) -> Any:
        movie = movies.get(pk)
        return None if movie is None else getattr(movie, attr)

    return {
        "titles": [movies[pk].title if pk in movies else str(pk) for pk in ids],
        "years": [_year(movies.get(pk)) for pk in ids],
        "genres": [sorted(genres[pk]) for pk in ids],
        "directors": [directors[pk] for pk in ids],
        "cast": [cast[pk] for pk in ids],
        "collections": [
            movies[pk].collection.id
            if pk in movies and movies[pk].collection is not None
            else None
            for pk in ids
        ],
        "vote_average": [fact(pk, "vote_average") for pk in ids],
        "vote_count": [fact(pk, "vote_count") for pk in ids],
        "overviews": [fact(pk, "overview") or "" for pk in ids],
        "keywords": [sorted(keywords[pk]) for pk in ids],
        "person_names": person_names,
        "collection_names": collection_names,
    }


def _year(movie: Movie | None) -> int | None:
    if movie is None:
        return None
    if movie.year:
        return int(movie.year)
    return movie.release_date.year if movie.release_date else None


# ------------------------------------------------------------------ memory
# The online path asks the catalog two things per event: does the movie
# exist (every event write) and what are its genres (every coordinator
# batch). The catalog only grows in practice, so each process keeps both for
# every movie, loaded in one query each and again after MEMORY_TTL_S; a movie
# added since is asked of the database (and remembered), and one deleted
# since is refused by the interaction log's foreign key (the writer then
# asks with ``fresh``, see ``existing_movie_ids``).
MEMORY_TTL_S = 60.0


@dataclass
class _Memory:
    loaded_at: float = -math.inf
    ids: set[int] = field(default_factory=set)
    genres: dict[int, list[str]] = field(default_factory=dict)


_ids_memory = _Memory()
_genres_memory = _Memory()


def catalog_memory_forget() -> None:
    """Forget what this process remembers of the catalog (tests)."""
    global _ids_memory, _genres_memory
    _ids_memory, _genres_memory = _Memory(), _Memory()


def _fresh(memory: _Memory) -> bool:
    return time.monotonic() - memory.loaded_at < MEMORY_TTL_S


def movie_genre_names(*, movie_ids: Iterable[int]) -> dict[int, list[str]]:
    """``{movie id: [genre name, ...]}`` for the given movies that have
    genres (from this process's memory of the catalog, above)."""
    global _genres_memory
    ids = set(movie_ids)
    if not _fresh(_genres_memory):
        memory = _Memory(loaded_at=time.monotonic())
        for movie_id, name in Movie.genres.through.objects.values_list(
            "movie_id", "genre__name"
        ):
            memory.genres.setdefault(movie_id, []).append(name)
        _genres_memory = memory
    memory = _genres_memory
    if missing := ids - memory.genres.keys():
        rows = Movie.genres.through.objects.filter(movie_id__in=missing)
        read: dict[int, list[str]] = {movie_id: [] for movie_id in missing}
        for movie_id, name in rows.values_list("movie_id", "genre__name"):
            read[movie_id].append(name)
        memory.genres.update(read)
    return {i: memory.genres[i] for i in ids if memory.genres.get(i)}


def existing_movie_ids(*, movie_ids: Iterable[int], fresh: bool = False) -> set[int]:
    """The ids among ``movie_ids`` that are in the catalog: from this
    process's memory of the catalog (above), the ones it does not know - or
    all of them, with ``fresh`` - in one query."""
    global _ids_memory
    ids = set(movie_ids)
    known: set[int] = set()
    if not fresh:
        if not _fresh(_ids_memory):
            _ids_memory = _Memory(
                loaded_at=time.monotonic(),
                ids=set(Movie.objects.values_list("pk", flat=True)),
            )
        known = ids & _ids_memory.ids
    if missing := ids - known:
        found = set(Movie.objects.filter(pk__in=missing).values_list("pk", flat=True))
        if not fresh:
            _ids_memory.ids |= found
        known |= found
    return known


def movie_titles(*, movie_ids: Iterable[int]) -> dict[int, str]:
    return dict(Movie.objects.filter(pk__in=set(movie_ids)).values_list("pk", "title"))
