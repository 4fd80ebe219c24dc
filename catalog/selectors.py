"""Reads of the catalog: lists, details, keyword search."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.postgres.expressions import ArraySubquery
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connection
from django.db.models import (
    Case,
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
from django.urls import reverse

from apex_site.errors import ApplicationError
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
        raise ApplicationError("No such movie.", code="not_found", status_code=404)
    return movie


def movie_directors(movie: Movie) -> list[str]:
    return [c.person.name for c in movie.credits.all() if c.role == "director"]


def movie_cast(movie: Movie) -> list[str]:
    return [c.person.name for c in movie.credits.all() if c.role == "cast"]


def poster_url(movie: Movie) -> str:
    """TMDB's poster when enrichment found one, else our SVG placeholder."""
    if movie.poster_path:
        return f"{TMDB_IMAGE_BASE}{movie.poster_path}"
    return reverse("catalog:poster", args=[movie.pk])


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
