"""Item metadata for the serving bundle, read from the catalog database.

:func:`build_item_metadata` returns an engine
:class:`~recommendations.engine.pipeline.items.ItemMetadata` indexed like the
given Movie primary keys (the trained ensemble's item vocabulary): titles,
release years, genres, directors, the top-3 billed cast, collection, TMDB
vote average / count, overview and keywords, plus person and collection
names for the reasons and the knowledge-graph endpoint. A key missing from
the catalog gets its id as title and empty facts. Five queries in all (movies,
genres, keywords, credits, collections), whatever the catalog size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from catalog.models import Credit, Movie
from recommendations.engine.pipeline.items import LEAD_CAST, ItemMetadata


def build_item_metadata(movie_ids: Sequence[Any]) -> ItemMetadata:
    """``ItemMetadata`` for ``movie_ids`` (Movie pks, position = dense index)."""
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
        elif len(cast[movie_id]) < LEAD_CAST:
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

    return ItemMetadata.build(
        [movies[pk].title if pk in movies else str(pk) for pk in ids],
        years=[_year(movies.get(pk)) for pk in ids],
        genres=[sorted(genres[pk]) for pk in ids],
        directors=[directors[pk] for pk in ids],
        cast=[cast[pk] for pk in ids],
        collections=[
            movies[pk].collection.id
            if pk in movies and movies[pk].collection is not None
            else None
            for pk in ids
        ],
        vote_average=[fact(pk, "vote_average") for pk in ids],
        vote_count=[fact(pk, "vote_count") for pk in ids],
        overviews=[fact(pk, "overview") or "" for pk in ids],
        keywords=[sorted(keywords[pk]) for pk in ids],
        person_names=person_names,
        collection_names=collection_names,
    )


def _year(movie: Movie | None) -> int | None:
    if movie is None:
        return None
    if movie.year:
        return int(movie.year)
    return movie.release_date.year if movie.release_date else None
