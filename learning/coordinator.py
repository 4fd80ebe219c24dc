"""The online learning coordinator: drains the event stream in micro-batches
and applies each event exactly once to the online state.

Runs in the Celery task ``learning.drain_events`` (queue ``learning``),
kicked after each publish and by a beat safety net; in the embedded mode
Celery runs the task in-process on the in-process stream: the same code.

Per micro-batch (up to ``MAX_BATCH`` entries, waiting at most ``BLOCK_MS``
for the first; when entries were already waiting - the coordinator is
behind - ``APEX_EVENTS_LINGER_MS`` more for the batch to fill), in one
transaction:

- ``AppliedEvent`` rows are inserted first (``ON CONFLICT DO NOTHING
  RETURNING``): only the events this call inserted are applied, so a second
  delivery (a re-claim, an outbox republish, a concurrent consumer) changes
  nothing;
- each user's real-time profile (``UserProfile``): recent events, the
  session (a gap of more than ``SESSION_GAP`` starts a new one), decayed
  genre affinity;
- the feature tables: ``ItemActivity`` (total and decayed recent count of
  positive events) and ``ItemTransition`` (the user's previous positive item
  → this one).

Then the entries are acknowledged (``XACK`` after the commit) and
``learning.signals.events_applied`` is sent after the commit. A batch that
fails is retried one entry at a time; a failing entry stays pending and is
re-claimed after ``APEX_EVENTS_CLAIM_IDLE_MS``; at its ``MAX_DELIVERIES``-th
failure it goes to the dead letters (stream + ``DeadLetter`` row).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from learning.models import (
    POSITIVE_KINDS,
    AppliedEvent,
    DeadLetter,
    Interaction,
    ItemActivity,
    ItemTransition,
    UserProfile,
)
from learning.ports import movie_catalog
from learning.selectors import AFFINITY_HALF_LIFE_DAYS, SESSION_GAP
from learning.signals import events_applied
from learning.stream import MAX_DELIVERIES, EventStream, StreamEntry, get_event_stream

logger = logging.getLogger(__name__)

MAX_BATCH = 100
BLOCK_MS = 50
RECENT_EVENTS = 200
RECENT_HALF_LIFE_HOURS = 24.0
PROFILE_FIELDS = (
    "recent", "genre_affinity", "events_applied", "session_number",
    "session_started_at", "session_events", "last_event_at", "updated_at",
)  # fmt: skip


@dataclass
class DrainResult:
    batches: int = 0
    applied: int = 0
    duplicates: int = 0
    failed: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    users: set[int] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "failed": self.failed,
            "dead_lettered": self.dead_lettered,
            "seconds": round(self.seconds, 3),
        }


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def events_drain(
    *,
    stream: EventStream | None = None,
    consumer: str | None = None,
    max_batch: int = MAX_BATCH,
    block_ms: int = BLOCK_MS,
    time_budget_s: float = 2.0,
) -> DrainResult:
    """Apply what the stream holds for up to ``time_budget_s`` seconds (until
    it is empty). Safe to run in several workers at once."""
    stream = stream or get_event_stream()
    consumer = consumer or consumer_name()
    idle_ms = settings.APEX_EVENTS_CLAIM_IDLE_MS
    linger_ms = settings.APEX_EVENTS_LINGER_MS
    started = time.monotonic()
    result = DrainResult()
    # stale entries are at least idle_ms old: looking for them more often
    # than every idle_ms / 2 (1 s at most) only costs a round trip per batch
    claim_every = min(1.0, idle_ms / 2000)
    next_claim = started
    while time.monotonic() - started < time_budget_s:
        entries: list[StreamEntry] = []
        if time.monotonic() >= next_claim:
            entries = stream.claim_stale(
                consumer=consumer, min_idle_ms=idle_ms, count=max_batch
            )
            next_claim = time.monotonic() + claim_every
        if len(entries) < max_batch:
            reading = time.monotonic()
            entries += stream.read(
                consumer=consumer,
                count=max_batch - len(entries),
                block_ms=0 if entries else block_ms,
            )
            waiting = entries and time.monotonic() - reading < 0.002
            if waiting and linger_ms and len(entries) < max_batch:
                # events were already waiting: the coordinator is behind, so
                # a fuller batch is cheaper per event than a quick one
                time.sleep(linger_ms / 1000)
                entries += stream.read(
                    consumer=consumer, count=max_batch - len(entries), block_ms=0
                )
        if not entries:
            break
        _process(stream, entries, result)
        result.batches += 1
    result.seconds = time.monotonic() - started
    if result.batches:
        logger.info("events drained", extra=result.as_dict())
    return result


def _process(
    stream: EventStream, entries: list[StreamEntry], result: DrainResult
) -> None:
    try:
        applied = _apply([e.event_id for e in entries])
    except Exception:  # noqa: BLE001 - isolate the entry that fails
        logger.warning("event batch failed; retrying one at a time", exc_info=True)
        for entry in entries:
            _process_one(stream, entry, result)
        return
    stream.ack([e.entry_id for e in entries])
    result.applied += len(applied)
    result.duplicates += len(entries) - len(applied)
    result.users.update(applied.values())


def _process_one(stream: EventStream, entry: StreamEntry, result: DrainResult) -> None:
    try:
        applied = _apply([entry.event_id])
    except Exception as exc:  # noqa: BLE001 - counted, retried, dead-lettered
        result.failed += 1
        if entry.deliveries >= MAX_DELIVERIES:
            _dead_letter(stream, entry, f"{type(exc).__name__}: {exc}")
            result.dead_lettered += 1
        else:
            logger.warning(
                "event failed; left pending for a retry",
                extra={"event_id": entry.event_id, "deliveries": entry.deliveries},
                exc_info=True,
            )
        return
    stream.ack([entry.entry_id])
    result.applied += len(applied)
    result.duplicates += 1 - len(applied)
    result.users.update(applied.values())


def _dead_letter(stream: EventStream, entry: StreamEntry, error: str) -> None:
    DeadLetter.objects.create(
        event_id=entry.event_id,
        entry_id=entry.entry_id,
        deliveries=entry.deliveries,
        error=error[:10_000],
    )
    stream.dead_letter(entry, error)
    logger.error(
        "event dead-lettered",
        extra={"event_id": entry.event_id, "deliveries": entry.deliveries},
    )


# ------------------------------------------------------------------ applying
def _claim(event_ids: Sequence[int]) -> set[int]:
    """Insert ``AppliedEvent`` rows for the ids that are in the log; the ids
    this call inserted (in id order: two batches never deadlock)."""
    if not event_ids:
        return set()
    applied = connection.ops.quote_name(AppliedEvent._meta.db_table)
    log = connection.ops.quote_name(Interaction._meta.db_table)
    marks = ", ".join(["%s"] * len(event_ids))
    now = AppliedEvent._meta.get_field("applied_at").get_db_prep_save(
        timezone.now(), connection
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {applied} (event_id, applied_at) "
            f"SELECT id, %s FROM {log} WHERE id IN ({marks}) ORDER BY id "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            [now, *event_ids],
        )
        return {int(row[0]) for row in cursor.fetchall()}


def _save(model: Any, objs: Sequence[Any], fields: Sequence[str]) -> None:
    """Write ``fields`` of each of ``objs`` back: one ``UPDATE`` per row, all
    sent in one ``executemany`` (psycopg pipelines them); cheaper than
    ``bulk_update``'s ``CASE WHEN`` or a ``save()`` per row."""
    if not objs:
        return
    meta = model._meta
    pk = meta.pk
    columns = [meta.get_field(name) for name in fields]
    assignments = ", ".join(
        f"{connection.ops.quote_name(f.column)} = %s" for f in columns
    )
    sql = (
        f"UPDATE {connection.ops.quote_name(meta.db_table)} SET {assignments} "
        f"WHERE {connection.ops.quote_name(pk.column)} = %s"
    )
    params = [
        [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in columns]
        + [obj.pk]
        for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _apply(event_ids: Sequence[int]) -> dict[int, int]:
    """Apply the events not applied before; ``{event id: user id}`` of those
    applied now. One transaction; ``events_applied`` after its commit."""
    with transaction.atomic():
        fresh = _claim(sorted(set(event_ids)))
        rows = list(
            Interaction.objects.filter(pk__in=fresh)
            .order_by("occurred_at", "id")
            .values("id", "user_id", "movie_id", "kind", "value", "occurred_at")
        )
        if not rows:
            return {}
        genres = movie_catalog().movie_genre_names(
            movie_ids={r["movie_id"] for r in rows}
        )
        transitions = _update_profiles(rows, genres)
        _update_items(rows)
        _update_transitions(transitions)
        # each user's newest event, a positive one where the batch has one
        causes = {row["user_id"]: row for row in rows}
        causes.update({r["user_id"]: r for r in rows if r["kind"] in POSITIVE_KINDS})
        users = {
            user_id: {
                "event_id": row["id"],
                "kind": row["kind"],
                "movie_id": row["movie_id"],
                "positive": row["kind"] in POSITIVE_KINDS,
            }
            for user_id, row in causes.items()
        }
        applied = [row["id"] for row in rows]
        transaction.on_commit(lambda: _announce(users, applied))
    return {row["id"]: row["user_id"] for row in rows}


def _announce(users: dict[int, dict[str, Any]], event_ids: list[int]) -> None:
    responses = events_applied.send_robust(
        sender=None, users=users, event_ids=event_ids
    )
    for receiver, response in responses:
        if isinstance(response, Exception):
            logger.warning(
                "events_applied receiver failed",
                extra={"receiver": getattr(receiver, "__qualname__", repr(receiver))},
                exc_info=response,
            )


def _decay(
    value: float, since: datetime | None, now: datetime, half_life_s: float
) -> float:
    if since is None or value == 0.0:
        return value
    elapsed = max(0.0, (now - since).total_seconds())
    return value * math.pow(0.5, elapsed / half_life_s)


def _locked_rows(
    model: Any,
    key: str,
    ids: set[int],
    select: str = "*",
    select_params: Sequence[Any] = (),
) -> dict[int, Any]:
    """``{id: row}`` of ``model`` for ``ids``, created empty where missing and
    locked until the commit, in id order (two batches never deadlock). Two
    plain statements: the ORM's ``bulk_create`` and ``select_for_update``
    cost more CPU than the database work (issue 13's profile). ``select``
    (with its ``select_params``): the columns to read; those left out are deferred,
    extra ones become attributes."""
    meta = model._meta
    quote = connection.ops.quote_name
    table, column = quote(meta.db_table), quote(meta.get_field(key).column)
    fields = meta.concrete_fields
    blank = [model(**{key: i}) for i in sorted(ids)]
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = [
        f.get_db_prep_save(f.pre_save(obj, add=True), connection)
        for obj in blank
        for f in fields
    ]
    marks = ", ".join(["%s"] * len(blank))
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(quote(f.column) for f in fields)}) "
            f"VALUES {', '.join([row] * len(blank))} "
            f"ON CONFLICT ({column}) DO NOTHING",
            params,
        )
    locked = model.objects.raw(
        f"SELECT {select} FROM {table} WHERE {column} IN ({marks}) "
        f"ORDER BY {column}{lock}",
        [*select_params, *sorted(ids)],
    )
    return {getattr(r, key): r for r in locked}


def _update_profiles(
    rows: list[dict[str, Any]], genres: dict[int, list[str]]
) -> list[tuple[int, int]]:
    """Update each user's profile in event order; the (previous positive
    movie, movie) transitions the batch makes."""
    users = {r["user_id"] for r in rows}
    in_sql = _recent_in_sql()
    if in_sql:
        select, params = _profile_select()
        profiles = _locked_rows(UserProfile, "user_id", users, select, params)
        previous = {u: p.previous_positive for u, p in profiles.items()}
    else:
        profiles = _locked_rows(UserProfile, "user_id", users)
        previous = {
            u: next((e[1] for e in p.recent if e[2] in POSITIVE_KINDS), None)
            for u, p in profiles.items()
        }
    new: dict[int, list[list[Any]]] = {u: [] for u in users}  # newest first
    half_life = AFFINITY_HALF_LIFE_DAYS * 86400.0
    transitions: list[tuple[int, int]] = []
    for row in rows:
        profile = profiles[row["user_id"]]
        at: datetime = row["occurred_at"]
        if profile.last_event_at is None or at - profile.last_event_at > SESSION_GAP:
            profile.session_number += 1
            profile.session_started_at = at
            profile.session_events = 0
        profile.session_events += 1
        positive = row["kind"] in POSITIVE_KINDS
        if positive:
            before = previous[row["user_id"]]
            if before is not None and before != row["movie_id"]:
                transitions.append((before, row["movie_id"]))
            previous[row["user_id"]] = row["movie_id"]
            reference = profile.last_event_at or at
            affinity = {
                name: _decay(float(v), reference, max(at, reference), half_life)
                for name, v in profile.genre_affinity.items()
            }
            for name in genres.get(row["movie_id"], ()):
                affinity[name] = affinity.get(name, 0.0) + 1.0
            profile.genre_affinity = {
                k: round(v, 6) for k, v in affinity.items() if v >= 1e-4
            }
        new[row["user_id"]].insert(
            0, [row["id"], row["movie_id"], row["kind"], at.timestamp()]
        )
        profile.events_applied += 1
        if profile.last_event_at is None or at > profile.last_event_at:
            profile.last_event_at = at
    now = timezone.now()
    for profile in profiles.values():
        profile.updated_at = now
    if not in_sql:
        for user_id, profile in profiles.items():
            profile.recent = [*new[user_id], *profile.recent][:RECENT_EVENTS]
        _save(UserProfile, list(profiles.values()), PROFILE_FIELDS)
        return transitions
    _save(
        UserProfile,
        list(profiles.values()),
        [f for f in PROFILE_FIELDS if f != "recent"],
    )
    table = connection.ops.quote_name(UserProfile._meta.db_table)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET recent = jsonb_path_query_array("
            f"%s::jsonb || recent, '$[0 to {RECENT_EVENTS - 1}]') WHERE user_id = %s",
            [(json.dumps(entries), user_id) for user_id, entries in new.items()],
        )
    return transitions


def _recent_in_sql() -> bool:
    """On PostgreSQL the database prepends a batch's events to each profile's
    ``recent`` (trimmed to ``RECENT_EVENTS``) and finds the newest positive
    movie in it (jsonb), so the learner never decodes or re-encodes the 200
    newest events of every user in the batch: a third of its CPU (issue 13's
    profile). Elsewhere (SQLite: the embedded mode) Python does both, with
    the same result (a test holds the two equal)."""
    return connection.vendor == "postgresql"


@functools.cache
def _profile_select() -> tuple[str, tuple[str, ...]]:
    """The profile's columns but ``recent``, and the newest positive movie in
    ``recent`` as ``previous_positive``."""
    quote = connection.ops.quote_name
    meta = UserProfile._meta
    columns = [quote(f.column) for f in meta.concrete_fields if f.name != "recent"]
    kinds = ", ".join(["%s"] * len(POSITIVE_KINDS))
    newest_positive = (
        "(SELECT (e.value ->> 1)::integer FROM jsonb_array_elements(recent) "
        f"WITH ORDINALITY AS e(value, n) WHERE e.value ->> 2 IN ({kinds}) "
        "ORDER BY e.n LIMIT 1) AS previous_positive"
    )
    return ", ".join([*columns, newest_positive]), tuple(sorted(POSITIVE_KINDS))


def _update_items(rows: list[dict[str, Any]]) -> None:
    positive = [r for r in rows if r["kind"] in POSITIVE_KINDS]
    if not positive:
        return
    items = _locked_rows(ItemActivity, "movie_id", {r["movie_id"] for r in positive})
    half_life = RECENT_HALF_LIFE_HOURS * 3600.0
    for row in positive:
        item = items[row["movie_id"]]
        at = row["occurred_at"]
        reference = item.last_event_at or at
        item.recent = _decay(item.recent, reference, max(at, reference), half_life) + 1
        item.events += 1
        if item.last_event_at is None or at > item.last_event_at:
            item.last_event_at = at
    _save(ItemActivity, list(items.values()), ["events", "recent", "last_event_at"])


def _update_transitions(pairs: list[tuple[int, int]]) -> None:
    """Count each (from, to) pair: one upsert that adds to the counts (in
    pair order: two batches never deadlock)."""
    if not pairs:
        return
    counts: dict[tuple[int, int], int] = {}
    for pair in pairs:
        counts[pair] = counts.get(pair, 0) + 1
    table = connection.ops.quote_name(ItemTransition._meta.db_table)
    values = ", ".join(["(%s, %s, %s)"] * len(counts))
    params: list[int] = []
    for (a, b), n in sorted(counts.items()):
        params += [a, b, n]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (from_movie_id, to_movie_id, count) "
            f"VALUES {values} ON CONFLICT (from_movie_id, to_movie_id) "
            f"DO UPDATE SET count = {table}.count + excluded.count",
            params,
        )
