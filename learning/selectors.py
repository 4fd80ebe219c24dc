"""Reads of the interaction log."""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max, QuerySet
from django.utils import timezone

from learning.models import POSITIVE_KINDS, Interaction, UserProfile

__all__ = ["POSITIVE_KINDS"]  # the one definition lives in learning.models

# The newest events considered: sequence models use the last few dozen items,
# and a bound keeps one query's cost flat for users with thousands of events.
MAX_HISTORY_EVENTS = 500

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


def interactions_exist() -> bool:
    return Interaction.objects.exists()


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


def history_cache_key(user_id: int) -> str:
    return f"learning:history:{user_id}"


def user_history_ids(*, user_id: int, limit: int = MAX_HISTORY_EVENTS) -> list[int]:
    """The user's history as ``Movie`` ids, oldest first, each movie once.

    History = the positive events (``POSITIVE_KINDS``: every rating whatever
    the stars, every watch and click), the same events training reads. One
    query over the ``(user, -occurred_at)`` index: the newest ``limit``
    positive events, reversed, deduplicated at each movie's first event.

    Every recommendation request runs this, so it is one fixed SQL string
    rather than a queryset: building and compiling the queryset cost 0.6-1.3
    ms a call against 0.2 ms for the whole raw query (PostgreSQL, ML-100K
    users; ``docs/BENCHMARKS.md``). Same SQL as the queryset
    ``Interaction.objects.filter(kind__in=POSITIVE_KINDS, user_id=...)
    .order_by("-occurred_at", "-id").values_list("movie_id")[:limit]``
    (a test holds them equal).

    The default-length history is cached per user for
    ``APEX_HISTORY_CACHE_SECONDS`` (Redis in production: one GET instead of a
    query on every recommendation request). The writer drops the entry after
    each commit that adds events (``learning.services``), before it announces
    them, so the feed refresh that follows reads the new history. One race
    remains: a read that queried just before a commit and stores its answer
    just after the drop keeps the old history cached until the entry expires
    (the TTL bounds it).
    """
    seconds = settings.APEX_HISTORY_CACHE_SECONDS
    cacheable = seconds > 0 and limit == MAX_HISTORY_EVENTS
    if cacheable:
        cached = cache.get(history_cache_key(user_id))
        if cached is not None:
            return cached
    history = _history_query(user_id, limit)
    if cacheable:
        cache.add(history_cache_key(user_id), history, seconds)
    return history


def _history_query(user_id: int, limit: int) -> list[int]:
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


def most_active_movie_ids(*, n: int, days: int) -> list[int]:
    """Movies with the most positive events in the log's last ``days`` days.

    "Last days" is measured back from the newest event in the log, so an
    imported data set (MovieLens ends in 1998) still has a window.
    """
    newest = Interaction.objects.aggregate(newest=Max("occurred_at"))["newest"]
    if newest is None:
        return []
    return list(
        Interaction.objects.filter(
            kind__in=POSITIVE_KINDS, occurred_at__gte=newest - timedelta(days=days)
        )
        .values("movie_id")
        .annotate(events=Count("id"))
        .order_by("-events", "movie_id")
        .values_list("movie_id", flat=True)[:n]
    )


def positive_events(
    *, chunk_size: int = 10_000
) -> Iterator[tuple[int, int, str, float | None, datetime]]:
    """Every positive event as ``(user_id, movie_id, kind, value, occurred_at)``
    (what training reads), streamed in chunks."""
    rows = Interaction.objects.filter(kind__in=POSITIVE_KINDS).values_list(
        "user_id", "movie_id", "kind", "value", "occurred_at"
    )
    return rows.iterator(chunk_size=chunk_size)


def event_summary(*, event_id: int) -> dict[str, Any] | None:
    """``{"kind", "movie_id", "user_id", "occurred_at"}`` of one event."""
    return (
        Interaction.objects.filter(pk=event_id)
        .values("kind", "movie_id", "user_id", "occurred_at")
        .first()
    )


def newest_applied_positive_event(*, user_id: int) -> dict[str, Any] | None:
    """``{"event_id", "movie_id", "kind"}`` of the user's applied positive
    event with the largest id (from the real-time profile: one row read);
    ``None`` before the coordinator applied one."""
    recent = (
        UserProfile.objects.filter(user_id=user_id)
        .values_list("recent", flat=True)
        .first()
    )
    positive = [e for e in recent or () if e[2] in POSITIVE_KINDS]
    if not positive:
        return None
    event_id, movie_id, kind, _at = max(positive, key=lambda e: e[0])
    return {"event_id": event_id, "movie_id": movie_id, "kind": kind}


# ------------------------------------------------------------------ real time
FEATURE_WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1),
                   "7d": timedelta(days=7)}  # fmt: skip
RECENT_SHOWN = 20
SESSION_GAP = timedelta(minutes=30)
AFFINITY_HALF_LIFE_DAYS = 30.0


def user_features(*, user_id: int, now: datetime | None = None) -> dict[str, Any]:
    """The user's real-time profile as the online coordinator keeps it.

    ``recent``: the newest events (newest first); ``counts``: events per kind
    in sliding windows ending ``now`` (read from the profile's newest 200
    events); ``genre_affinity``: decayed positive-event counts per genre as of
    ``now`` (half-life 30 days), largest first, with their share; ``session``:
    the current session (a gap over 30 minutes starts a new one);
    ``updated_at``: when the coordinator last applied an event of the user
    (``None``: never).
    """
    now = now or timezone.now()
    profile = UserProfile.objects.filter(user_id=user_id).first()
    recent = profile.recent if profile else []
    counts: dict[str, dict[str, int]] = {}
    for name, span in FEATURE_WINDOWS.items():
        since = (now - span).timestamp()
        window = {kind: 0 for kind in Interaction.Kind.values}
        for _event_id, _movie_id, kind, at in recent:
            if at >= since and kind in window:
                window[kind] += 1
        counts[name] = window
    affinity: list[dict[str, Any]] = []
    if profile and profile.genre_affinity and profile.last_event_at:
        age_days = max(0.0, (now - profile.last_event_at).total_seconds() / 86400)
        factor = math.pow(0.5, age_days / AFFINITY_HALF_LIFE_DAYS)
        decayed = {k: v * factor for k, v in profile.genre_affinity.items()}
        total = sum(decayed.values()) or 1.0
        affinity = [
            {"genre": k, "weight": round(v, 4), "share": round(v / total, 4)}
            for k, v in sorted(decayed.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
    session = None
    if profile and profile.session_started_at:
        session = {
            "number": profile.session_number,
            "started_at": profile.session_started_at,
            "events": profile.session_events,
            "active": now - profile.last_event_at <= SESSION_GAP,
        }
    return {
        "user_id": user_id,
        "recent": [
            {
                "event_id": event_id,
                "movie_id": movie_id,
                "kind": kind,
                "occurred_at": datetime.fromtimestamp(at, tz=UTC),
            }
            for event_id, movie_id, kind, at in recent[:RECENT_SHOWN]
        ],
        "counts": counts,
        "genre_affinity": affinity,
        "session": session,
        "events_applied": profile.events_applied if profile else 0,
        "last_event_at": profile.last_event_at if profile else None,
        "updated_at": profile.updated_at if profile else None,
    }


def events_with_history(*, event_ids: Iterable[int]) -> list[dict[str, Any]]:
    """The events (oldest first), each with its user's positive history just
    before it: ``{"event_id", "user_id", "movie_id", "kind", "positive",
    "at", "history": [(movie_id, at), ...]}`` (``at`` in epoch seconds;
    history oldest first, each movie once, at most ``MAX_HISTORY_EVENTS``).
    One query for the events and one per user."""
    rows = list(
        Interaction.objects.filter(pk__in=set(event_ids))
        .order_by("occurred_at", "id")
        .values("id", "user_id", "movie_id", "kind", "occurred_at")
    )
    by_user: dict[int, list[tuple[float, int, int]]] = {}
    for user_id in {r["user_id"] for r in rows}:
        newest = (
            Interaction.objects.filter(user_id=user_id, kind__in=POSITIVE_KINDS)
            .order_by("-occurred_at", "-id")
            .values_list("occurred_at", "id", "movie_id")[:MAX_HISTORY_EVENTS]
        )
        by_user[user_id] = [(at.timestamp(), pk, m) for at, pk, m in reversed(newest)]
    out = []
    for row in rows:
        key = (row["occurred_at"].timestamp(), row["id"])
        seen: set[int] = set()
        history = []
        for at, pk, movie_id in by_user[row["user_id"]]:
            if (at, pk) >= key:
                break
            if movie_id not in seen:
                seen.add(movie_id)
                history.append((movie_id, at))
        out.append(
            {
                "event_id": row["id"],
                "user_id": row["user_id"],
                "movie_id": row["movie_id"],
                "kind": row["kind"],
                "positive": row["kind"] in POSITIVE_KINDS,
                "at": key[0],
                "history": history,
            }
        )
    return out


def holdout_histories(
    *, users: int, min_events: int = 3, seed: int = 0
) -> list[list[int]]:
    """Up to ``users`` users' positive histories (movie ids, oldest first,
    each movie once) of at least ``min_events`` movies, a seeded sample: the
    online learner's guard holds out each one's last movie."""
    candidates = list(
        Interaction.objects.filter(kind__in=POSITIVE_KINDS)
        .values("user_id")
        .annotate(events=Count("id"))
        .filter(events__gte=min_events)
        .order_by("user_id")
        .values_list("user_id", flat=True)
    )
    random.Random(seed).shuffle(candidates)
    out = []
    for user_id in candidates[:users]:
        history = user_history_ids(user_id=user_id)
        if len(history) >= min_events:
            out.append(history)
    return out


def positive_pairs_with_user_field(*, field: str) -> Iterator[tuple[int, int, str]]:
    """Each distinct (user, movie) pair with a positive event, with the user's
    demographic ``field`` (``age_band``, ``gender`` or ``occupation``; empty
    when unknown), as ``(user_id, movie_id, value)`` — what the analytics
    app's private releases count."""
    if field not in {"age_band", "gender", "occupation"}:
        raise ValueError(f"not a demographic field: {field}")
    rows = (
        Interaction.objects.filter(kind__in=POSITIVE_KINDS)
        .order_by()
        .values_list("user_id", "movie_id", f"user__{field}")
        .distinct()
    )
    return rows.iterator(chunk_size=10_000)


def event_stream_backlog() -> dict[str, Any] | None:
    """The online learner's lag: stream length, pending entries, consumer-group
    lag, dead letters (None when the stream cannot be read)."""
    from learning.stream import get_event_stream

    try:
        return get_event_stream().backlog()
    except Exception:  # noqa: BLE001 - a dashboard shows "unavailable"
        return None


def events_for_requests(*, request_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The events that name one of ``request_ids`` (the served list they came
    from), oldest first: ``request_id``, ``user_id``, ``movie_id``, ``kind``,
    ``value``, ``occurred_at`` — what the experiments app joins to its
    impression log (only the served user's events count: any caller may send
    any request id)."""
    ids = [r for r in set(request_ids) if r]
    if not ids:
        return []
    return list(
        Interaction.objects.filter(request_id__in=ids)
        .order_by("occurred_at", "id")
        .values("request_id", "user_id", "movie_id", "kind", "value", "occurred_at")
    )
