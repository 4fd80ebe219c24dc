"""Reads of the interaction log."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection
from django.db.models import QuerySet

from learning.models import Interaction

# The newest rating of each (movie, user) pair, so a re-rating replaces the
# earlier one instead of counting twice. Window functions run on PostgreSQL
# and on SQLite >= 3.25 alike.
_LATEST_RATINGS_SQL = """
SELECT movie_id, COUNT(*), AVG(value) FROM (
    SELECT movie_id, value, ROW_NUMBER() OVER (
        PARTITION BY movie_id, user_id ORDER BY occurred_at DESC, id DESC
    ) AS rn
    FROM learning_interaction
    WHERE kind = 'rating' AND value IS NOT NULL {movie_filter}
) AS latest
WHERE rn = 1
GROUP BY movie_id
"""


def rating_aggregates(
    *, movie_ids: Iterable[int] | None = None
) -> dict[int, tuple[int, float]]:
    """``{movie_id: (ratings, mean)}`` over each user's newest rating."""
    params: list[int] = []
    movie_filter = ""
    if movie_ids is not None:
        params = list(movie_ids)
        if not params:
            return {}
        movie_filter = f"AND movie_id IN ({', '.join(['%s'] * len(params))})"
    with connection.cursor() as cursor:
        cursor.execute(_LATEST_RATINGS_SQL.format(movie_filter=movie_filter), params)
        return {row[0]: (int(row[1]), float(row[2])) for row in cursor.fetchall()}


def rating_distribution(*, movie_id: int) -> dict[float, int]:
    """How many users' newest rating of the movie is each star value."""
    latest: dict[int, float] = {}
    rows = (
        Interaction.objects.filter(
            movie_id=movie_id, kind=Interaction.Kind.RATING, value__isnull=False
        )
        .order_by("occurred_at", "id")
        .values_list("user_id", "value")
    )
    for user_id, value in rows:
        latest[user_id] = value
    counts: dict[float, int] = {}
    for value in latest.values():
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def _latest(user_id: int, movie_id: int, kind: str) -> Interaction | None:
    return (
        Interaction.objects.filter(user_id=user_id, movie_id=movie_id, kind=kind)
        .order_by("-occurred_at", "-id")
        .first()
    )


def user_rating(*, user_id: int, movie_id: int) -> float | None:
    latest = _latest(user_id, movie_id, Interaction.Kind.RATING)
    return None if latest is None else latest.value


def user_has_on_watchlist(*, user_id: int, movie_id: int) -> bool:
    latest = _latest(user_id, movie_id, Interaction.Kind.WATCHLIST)
    return bool(latest and latest.value)


def interactions_of_user(*, user_id: int) -> QuerySet[Interaction]:
    return Interaction.objects.filter(user_id=user_id).order_by("occurred_at", "id")


def interactions_from_source(*, source: str) -> QuerySet[Interaction]:
    return Interaction.objects.filter(source=source)
