"""Reads the recommendation service needs from the database.

Every function here is one query (two for trending, see below), returns plain
ids, and never touches rows one at a time, so a feed request costs a fixed
number of round trips whatever the history length.

What counts as history
----------------------
The same events ``manage.py train`` trains on (its ``IMPLICIT_KINDS``; a test
keeps the two equal): every **rating** whatever the stars, every **watch** and
every **click**, as implicit feedback. A movie counts once, at its first such
event, and the history is oldest first, so the engine sees the sequence it
was trained on. **Watchlist** events are intent, not consumption, and are left
out, as in training.
"""

from __future__ import annotations

import functools
import math
from datetime import timedelta

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max, Q

from catalog.models import Movie
from learning.models import Interaction

Ids = set[int] | frozenset[int]

POSITIVE_KINDS = (
    Interaction.Kind.RATING,
    Interaction.Kind.WATCH,
    Interaction.Kind.CLICK,
)
# The newest events considered: sequence models use the last few dozen items,
# and a bound keeps one query's cost flat for users with thousands of events.
MAX_HISTORY_EVENTS = 500
TRENDING_DAYS = 30
HEAD_SHARE = 0.2  # the top 20 % by rating_count is the "head"; the rest, the tail
_CACHE_SECONDS = 300


def _positive_events() -> Q:
    return Q(kind__in=POSITIVE_KINDS)


@functools.cache
def _history_sql() -> str:
    quote = connection.ops.quote_name
    meta = Interaction._meta
    column = {f.name: quote(f.column) for f in meta.concrete_fields}
    kinds = ", ".join(["%s"] * len(POSITIVE_KINDS))
    return (
        f"SELECT {column['movie']} FROM {quote(meta.db_table)} "
        f"WHERE {column['user']} = %s AND {column['kind']} IN ({kinds}) "
        f"ORDER BY {column['occurred_at']} DESC, {column['id']} DESC LIMIT %s"
    )


def user_history_ids(*, user_id: int, limit: int = MAX_HISTORY_EVENTS) -> list[int]:
    """The user's history as ``Movie`` ids, oldest first, each movie once.

    One query over the ``(user, -occurred_at)`` index: the newest ``limit``
    positive events, reversed, deduplicated at each movie's first event.

    Every recommendation request runs this, so it is one fixed SQL string
    rather than a queryset: building and compiling the queryset cost 0.6-1.3
    ms a call against 0.2 ms for the whole raw query (PostgreSQL, ML-100K
    users; ``docs/BENCHMARKS.md``). Same SQL as the queryset
    ``Interaction.objects.filter(kind__in=POSITIVE_KINDS, user_id=...)
    .order_by("-occurred_at", "-id").values_list("movie_id")[:limit]``
    (a test holds them equal).
    """
    with connection.cursor() as cursor:
        cursor.execute(_history_sql(), [user_id, *POSITIVE_KINDS, limit])
        newest_first = [row[0] for row in cursor.fetchall()]
    seen: set[int] = set()
    history: list[int] = []
    for movie_id in reversed(newest_first):
        if movie_id not in seen:
            seen.add(movie_id)
            history.append(movie_id)
    return history


def user_exists(*, user_id: int) -> bool:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(pk=user_id).exists()


def popular_ids(*, n: int, exclude_ids: Ids = frozenset()) -> list[int]:
    """Most rated movies first (the ``movie_popularity_idx`` index)."""
    rows = Movie.objects.order_by("-rating_count", "id")
    if exclude_ids:
        rows = rows.exclude(pk__in=exclude_ids)
    return list(rows.values_list("id", flat=True)[:n])


def trending_ids(*, n: int, days: int = TRENDING_DAYS) -> list[int]:
    """Movies with the most positive events in the log's last ``days`` days.

    "Last days" is measured back from the newest event in the log, so an
    imported data set (MovieLens ends in 1998) still has a trending list.
    Cached for five minutes: it is the same for everybody. When the window
    holds fewer than ``n`` movies, the most rated movies fill up.
    """
    key = f"recommendations:trending:{n}:{days}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    newest = Interaction.objects.aggregate(newest=Max("occurred_at"))["newest"]
    ids: list[int] = []
    if newest is not None:
        ids = list(
            Interaction.objects.filter(
                _positive_events(), occurred_at__gte=newest - timedelta(days=days)
            )
            .values("movie_id")
            .annotate(events=Count("id"))
            .order_by("-events", "movie_id")
            .values_list("movie_id", flat=True)[:n]
        )
    if len(ids) < n:
        ids += popular_ids(n=n - len(ids), exclude_ids=set(ids))
    cache.set(key, ids, _CACHE_SECONDS)
    return ids


def head_ids() -> frozenset[int]:
    """Movies in the top ``HEAD_SHARE`` by ``rating_count`` (cached 5 minutes).

    Excluding these from a request leaves the long tail (hidden gems).
    """
    key = "recommendations:head-ids"
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
    """Same director / collection / lead cast / genres, from the catalog tables.

    The fallback of the engine's knowledge graph: four small queries.
    """
    from catalog.models import Credit

    movie = Movie.objects.filter(pk=movie_id).values("collection_id").first()
    if movie is None:
        return {}
    others = Movie.objects.exclude(pk=movie_id).order_by("-rating_count", "id")
    credits = Credit.objects.filter(movie_id=movie_id)
    directors = credits.filter(role=Credit.Role.DIRECTOR).values("person_id")
    lead_cast = credits.filter(role=Credit.Role.CAST, order__lt=3).values("person_id")
    graph = {
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
    return graph
