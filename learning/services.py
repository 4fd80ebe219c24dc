"""Writes to the interaction log."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apex_site.errors import ApplicationError, ErrorCode
from learning import selectors
from learning.errors import LearningErrorCode
from learning.models import POSITIVE_KINDS, AppliedEvent, ExportWatermark, Interaction
from learning.ports import movie_catalog
from learning.signals import interaction_recorded
from learning.stream import get_event_stream

logger = logging.getLogger(__name__)

RATING_VALUES = {x / 2 for x in range(1, 11)}  # 0.5 .. 5.0 in half stars


@dataclass(frozen=True)
class InteractionRow:
    """One event to import; ``idempotency_key`` makes re-imports no-ops."""

    user_id: int
    movie_id: int
    kind: str
    value: float | None
    occurred_at: datetime
    source: str
    idempotency_key: str


@dataclass
class ImportCounts:
    read: int = 0
    loaded: int = 0
    already_present: int = 0


def _batches(rows: Iterable[InteractionRow], size: int) -> Iterator[list]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def interactions_bulk_import(
    *,
    rows: Iterable[InteractionRow],
    batch_size: int = 5000,
    on_batch: Callable[[int], None] | None = None,
) -> ImportCounts:
    """Insert events in batches, one transaction per batch, skipping known keys.

    Re-running with the same rows inserts nothing: keys already in the table
    are counted as ``already_present``.
    """
    if connection.vendor == "postgresql":
        return _bulk_import_copy(rows, batch_size * 4, on_batch)
    counts = ImportCounts()
    for batch in _batches(rows, batch_size):
        counts.read += len(batch)
        keys = [row.idempotency_key for row in batch]
        with transaction.atomic():
            existing = set(
                Interaction.objects.filter(idempotency_key__in=keys).values_list(
                    "idempotency_key", flat=True
                )
            )
            fresh = [
                Interaction(
                    user_id=row.user_id,
                    movie_id=row.movie_id,
                    kind=row.kind,
                    value=row.value,
                    occurred_at=row.occurred_at,
                    source=row.source,
                    idempotency_key=row.idempotency_key,
                )
                for row in batch
                if row.idempotency_key not in existing
            ]
            # ignore_conflicts covers a concurrent writer between the SELECT
            # and the INSERT; the SELECT gives the counts.
            Interaction.objects.bulk_create(fresh, ignore_conflicts=True)
        _forget_histories_on_commit(batch)
        counts.loaded += len(fresh)
        counts.already_present += len(existing)
        if on_batch:
            on_batch(counts.read)
    return counts


def _forget_histories_on_commit(batch: Sequence[InteractionRow]) -> None:
    users = {row.user_id for row in batch}
    transaction.on_commit(lambda: history_forget(user_ids=users))


def history_forget(*, user_ids: Iterable[int]) -> None:
    """Drop the cached histories of ``user_ids`` (``selectors.user_history_ids``);
    the writer calls it after each commit that adds events. Never raises: a
    cache that cannot be reached holds nothing the TTL does not end."""
    keys = [selectors.history_cache_key(u) for u in set(user_ids)]
    if not keys:
        return
    try:
        cache.delete_many(keys)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        logger.warning("history cache unavailable", extra={"error": str(exc)})


_COLUMNS = "user_id, movie_id, kind, value, occurred_at, source, idempotency_key"


def _bulk_import_copy(
    rows: Iterable[InteractionRow],
    batch_size: int,
    on_batch: Callable[[int], None] | None,
) -> ImportCounts:
    """PostgreSQL: COPY each batch into a temporary table, then one INSERT ...
    ON CONFLICT DO NOTHING, so known idempotency keys cost no round trip and the
    rowcount tells loaded from already present (5-10x faster than INSERTs)."""
    counts = ImportCounts()
    for batch in _batches(rows, batch_size):
        counts.read += len(batch)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS learning_interaction_import ("
                "user_id bigint, movie_id bigint, kind varchar(16), value double "
                "precision, occurred_at timestamptz, source varchar(40), "
                "idempotency_key varchar(128)) ON COMMIT DELETE ROWS"
            )
            with cursor.cursor.copy(
                f"COPY learning_interaction_import ({_COLUMNS}) FROM STDIN"
            ) as copy:
                for row in batch:
                    copy.write_row(
                        (row.user_id, row.movie_id, row.kind, row.value,
                         row.occurred_at, row.source, row.idempotency_key)
                    )  # fmt: skip
            cursor.execute(
                f"INSERT INTO learning_interaction ({_COLUMNS}, created_at) "
                f"SELECT {_COLUMNS}, now() FROM learning_interaction_import "
                "ON CONFLICT (idempotency_key) DO NOTHING"
            )
            loaded = cursor.rowcount
        _forget_histories_on_commit(batch)
        counts.loaded += loaded
        counts.already_present += len(batch) - loaded
        if on_batch:
            on_batch(counts.read)
    return counts


def interaction_record(
    *,
    user_id: int,
    movie_id: int,
    kind: str,
    value: float | None = None,
    source: str = "web",
    idempotency_key: str | None = None,
    occurred_at: datetime | None = None,
    request_id: str | None = None,
) -> tuple[Interaction, bool]:
    """Append one live event; returns ``(row, created)``.

    ``request_id``: the served list (slate) the event came from, if any.

    The one door for live events (pages, API). A repeated ``idempotency_key``
    (a resubmitted form, a retried API call) returns the existing row instead
    of adding another, and announces nothing. A new row is announced with
    ``learning.signals.interaction_recorded`` after the surrounding
    transaction commits (at once in autocommit), so a rolled-back write is
    never announced.
    """
    if kind not in Interaction.Kind.values:
        raise ApplicationError(
            f"Unknown interaction kind {kind!r}.", code=ErrorCode.INVALID
        )
    if kind == Interaction.Kind.RATING and value not in RATING_VALUES:
        raise ApplicationError(
            "A rating is 0.5 to 5 stars in half stars.",
            code=LearningErrorCode.INVALID_RATING,
            detail={"value": ["Must be 0.5, 1, 1.5, … 5."]},
        )
    key = idempotency_key or f"{source}:{uuid.uuid4()}"
    existing = Interaction.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            row = Interaction.objects.create(
                user_id=user_id,
                movie_id=movie_id,
                kind=kind,
                value=value,
                occurred_at=occurred_at or timezone.now(),
                source=source,
                idempotency_key=key,
                request_id=request_id or None,
            )
    except IntegrityError:  # lost a race with the same key
        return Interaction.objects.get(idempotency_key=key), False
    logger.info("interaction recorded", extra={"kind": kind, "event_id": row.pk})
    transaction.on_commit(lambda: _after_commit([row]))
    return row, True


# ------------------------------------------------------------------ the events API
MAX_BATCH = 500
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class EventInput:
    """One event as the API parsed it (types checked, rules not yet)."""

    kind: str
    movie_id: int
    value: float | None = None
    occurred_at: datetime | None = None
    idempotency_key: str | None = None
    request_id: str | None = None


def event_errors(
    event: EventInput, *, now: datetime, max_age: timedelta
) -> dict[str, list[str]]:
    """What is wrong with one event, per field (empty: nothing)."""
    errors: dict[str, list[str]] = {}
    kind, value = event.kind, event.value
    if kind not in Interaction.Kind.values:
        errors["kind"] = [f"Must be one of {', '.join(Interaction.Kind.values)}."]
    elif kind == Interaction.Kind.RATING and value not in RATING_VALUES:
        errors["value"] = ["A rating is 0.5 to 5 stars in half stars."]
    elif kind == Interaction.Kind.WATCHLIST and value not in (0.0, 1.0):
        errors["value"] = ["A watchlist event is 1 (added) or 0 (removed)."]
    elif kind == Interaction.Kind.WATCH and value is not None and not 0 <= value <= 1:
        errors["value"] = ["A watch event's value is the fraction watched, 0 to 1."]
    elif kind == Interaction.Kind.CLICK and value is not None:
        errors["value"] = ["A click has no value."]
    if event.occurred_at is not None:
        if event.occurred_at > now + FUTURE_TOLERANCE:
            errors["occurred_at"] = ["More than 5 minutes in the future."]
        elif event.occurred_at < now - max_age:
            errors["occurred_at"] = [
                f"Older than the accepted age ({max_age.days} days)."
            ]
    return errors


def events_validate(
    *, events: Sequence[EventInput], now: datetime | None = None, fresh: bool = False
) -> dict[str, dict[str, list[str]]]:
    """``{index: {field: [problem, ...]}}`` of the bad events (empty: none).
    ``fresh``: ask the catalog's database, not its memory of known movies."""
    now = now or timezone.now()
    max_age = timedelta(days=settings.APEX_EVENTS_MAX_AGE_DAYS)
    errors: dict[str, dict[str, list[str]]] = {}
    for index, event in enumerate(events):
        problems = event_errors(event, now=now, max_age=max_age)
        if problems:
            errors[str(index)] = problems
    known = movie_catalog().existing_movie_ids(
        movie_ids=[e.movie_id for e in events], fresh=fresh
    )
    for index, event in enumerate(events):
        if event.movie_id not in known:
            errors.setdefault(str(index), {})["movie_id"] = [
                f"No movie with id {event.movie_id}."
            ]
    return errors


@dataclass(frozen=True)
class RecordedEvent:
    event_id: int
    created: bool  # false: the idempotency key was seen before


def events_record(
    *, user_id: int, events: Sequence[EventInput], source: str = "api"
) -> list[RecordedEvent]:
    """Append a batch of live events, all or nothing; one result per event.

    Every event is checked first (``event_errors``, the movie exists): any
    problem raises ``ApplicationError`` ``invalid`` (400) whose ``detail``
    names each bad event by its index and field, and nothing is written.
    Idempotency keys are the client's, scoped to the user: a key seen before
    (in an earlier call or earlier in this batch) returns the first event's
    id and writes nothing. The rows are in the log when this returns (inside
    the caller's transaction, if any); after the commit they are announced
    and published to the event stream (``_after_commit``).
    """
    if not events:
        raise ApplicationError(
            "Send at least one event.", code=ErrorCode.INVALID, detail={}
        )
    if len(events) > MAX_BATCH:
        raise ApplicationError(
            f"At most {MAX_BATCH} events in one batch.",
            code=LearningErrorCode.BATCH_TOO_LARGE,
            detail={"events": [f"{len(events)} events; the limit is {MAX_BATCH}."]},
        )
    _refuse_invalid(events, events_validate(events=events))
    now = timezone.now()
    keys = [
        f"{source}:{user_id}:{e.idempotency_key}"
        if e.idempotency_key
        else f"{source}:{uuid.uuid4()}"
        for e in events
    ]
    # One INSERT writes the whole batch: in autocommit it is atomic by itself
    # (no BEGIN / COMMIT round trips); inside a caller's transaction a
    # savepoint keeps that transaction usable after a refused foreign key.
    in_transaction = connection.in_atomic_block
    try:
        with transaction.atomic() if in_transaction else contextlib.nullcontext():
            return _insert_batch(user_id, events, keys, source, now)
    except IntegrityError:
        # a movie deleted after the check (``existing_movie_ids`` may answer
        # from memory): ask the catalog itself, and name it
        _refuse_invalid(events, events_validate(events=events, fresh=True))
        raise


def _refuse_invalid(
    events: Sequence[EventInput], errors: dict[str, dict[str, list[str]]]
) -> None:
    """``invalid`` (400) naming each bad event, when there is one."""
    if errors:
        raise ApplicationError(
            f"{len(errors)} of {len(events)} events are invalid; none was recorded.",
            code=ErrorCode.INVALID,
            detail={"events": errors},
        )


def _insert_batch(
    user_id: int,
    events: Sequence[EventInput],
    keys: list[str],
    source: str,
    now: datetime,
) -> list[RecordedEvent]:
    fresh: dict[str, Interaction] = {}
    for event, key in zip(events, keys, strict=True):
        if key not in fresh:
            fresh[key] = Interaction(
                user_id=user_id,
                movie_id=event.movie_id,
                kind=event.kind,
                value=event.value,
                occurred_at=event.occurred_at or now,
                source=source,
                idempotency_key=key,
                request_id=event.request_id or None,
                created_at=now,
            )
    created = _insert_new(list(fresh.values()))
    seen = [key for key in fresh if key not in created]
    existing = (
        dict(
            Interaction.objects.filter(idempotency_key__in=seen).values_list(
                "idempotency_key", "id"
            )
        )
        if seen
        else {}
    )
    rows = [row for key, row in fresh.items() if key in created]
    out = []
    for key in keys:
        if key in created and fresh[key].pk is None:
            fresh[key].pk = created[key]
            out.append(RecordedEvent(created[key], True))
        else:
            out.append(RecordedEvent(created.get(key) or existing[key], False))
    logger.info(
        "events recorded",
        extra={"user_id": user_id, "new_events": len(rows), "events": len(events)},
    )
    transaction.on_commit(lambda: _after_commit(rows))
    return out


_INSERTED_FIELDS = (
    "user", "movie", "kind", "value", "occurred_at", "source",
    "idempotency_key", "request_id", "created_at",
)  # fmt: skip


def _insert_new(rows: Sequence[Interaction]) -> dict[str, int]:
    """Insert the rows whose idempotency key is new, in one statement
    (``ON CONFLICT DO NOTHING RETURNING``: a concurrent call with the same
    key makes no error and no second row); ``{key: id}`` of those inserted."""
    if not rows:
        return {}
    meta = Interaction._meta
    fields = [meta.get_field(name) for name in _INSERTED_FIELDS]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    values = ", ".join(["(" + ", ".join(["%s"] * len(fields)) + ")"] * len(rows))
    params = [
        f.get_db_prep_save(getattr(row, f.attname), connection)
        for row in rows
        for f in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {values} "
            f"ON CONFLICT ({quote('idempotency_key')}) DO NOTHING "
            f"RETURNING {quote('idempotency_key')}, {quote('id')}",
            params,
        )
        return {key: int(pk) for key, pk in cursor.fetchall()}


# ------------------------------------------------------------------ after commit
def _after_commit(rows: Sequence[Interaction]) -> None:
    """Drop the users' cached histories, publish the rows to the event
    stream (waking the coordinator) and announce them
    (``interaction_recorded``). Where the cache lives on the stream's Redis
    (production) the histories go in the publish's round trip. Never raises:
    the rows are committed (the client is told so), and what is not
    published now the outbox catch-up publishes."""
    users = [row.user_id for row in rows]
    stale = _history_keys_on_stream(users)
    if stale is None:
        history_forget(user_ids=users)
    try:
        if rows:
            events_publish(event_ids=[row.pk for row in rows], forget=stale or ())
        for row in rows:
            _announce(row)
    except Exception:  # noqa: BLE001 - see the docstring
        logger.exception("after-commit work failed", extra={"events": len(rows)})


def _history_keys_on_stream(user_ids: Sequence[int]) -> list[str] | None:
    """The Redis keys of the users' cached histories when the cache is the
    stream's Redis (one round trip drops them and publishes); None when it
    is another server or no Redis at all (``history_forget`` drops them)."""
    location = settings.CACHES["default"].get("LOCATION")
    if not settings.REDIS_URL or location != settings.REDIS_URL:
        return None
    return [
        cache.make_and_validate_key(selectors.history_cache_key(u))
        for u in set(user_ids)
    ]


def events_publish(*, event_ids: Sequence[int], forget: Sequence[str] = ()) -> bool:
    """Publish to the event stream (deleting the Redis keys ``forget`` in the
    same round trip) and, unless a drain is already waiting, enqueue one (the
    stream's wake flag, raised in that round trip too); ``False`` (one
    WARNING) when the stream cannot be reached."""
    try:
        wake = get_event_stream().publish(event_ids, forget=forget)
    except Exception as exc:  # noqa: BLE001 - the outbox catch-up republishes
        logger.warning(
            "event stream unavailable; the outbox catch-up will publish",
            extra={"events": len(event_ids), "error": str(exc)},
        )
        return False
    if wake:
        events_drain_enqueue()
    return True


def events_drain_enqueue() -> None:
    """Enqueue one ``learning.drain_events``; when that fails, lower the
    stream's wake flag so the next publish tries again (the beat safety net
    drains meanwhile)."""
    from learning.tasks import drain_events

    try:
        drain_events.delay()
    except Exception as exc:  # noqa: BLE001 - see the docstring
        with contextlib.suppress(Exception):  # Redis may be gone altogether
            get_event_stream().wake_lower()
        logger.warning(
            "could not enqueue the event drain",
            extra={"error": str(exc)},
            exc_info=True,
        )


OUTBOX = "stream-outbox"
OUTBOX_GRACE = timedelta(seconds=30)
OUTBOX_HORIZON = timedelta(minutes=10)
OUTBOX_BATCH = 5000
LIVE_SOURCES = ("web", "api")  # imports (MovieLens, the demo copy) are not live


def events_republish(
    *, grace: timedelta = OUTBOX_GRACE, horizon: timedelta = OUTBOX_HORIZON
) -> dict[str, int]:
    """The outbox catch-up: publish every live event after the watermark that
    is older than ``grace`` (in-flight commits publish themselves) and not
    yet applied by the coordinator, then move the watermark.

    The watermark only passes events that are applied and older than
    ``horizon``: ids are not committed in id order (concurrent requests), so
    a row with a smaller id can become visible after a larger one; no
    transaction lasts ``horizon``. Publishing an event twice is harmless (the
    coordinator applies it once); an event accepted is never skipped.
    """
    watermark, _ = ExportWatermark.objects.get_or_create(name=OUTBOX)
    start = watermark.last_event_id
    now = timezone.now()
    live = Interaction.objects.filter(pk__gt=start, source__in=LIVE_SOURCES)
    pending = live.filter(created_at__lt=now - grace).exclude(
        pk__in=AppliedEvent.objects.filter(event_id__gt=start).values("event_id")
    )
    published = 0
    last = start
    wake = False
    while True:
        ids = list(
            pending.filter(pk__gt=last)
            .order_by("pk")
            .values_list("pk", flat=True)[:OUTBOX_BATCH]
        )
        if not ids:
            break
        wake = get_event_stream().publish(ids) or wake  # raises if Redis is down
        published += len(ids)
        last = ids[-1]
    # how far every live event is applied (and old enough to be committed)
    settled = live.filter(created_at__lt=now - horizon)
    first_open = (
        live.exclude(
            pk__in=AppliedEvent.objects.filter(event_id__gt=start).values("event_id")
        )
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    if first_open is not None:
        settled = settled.filter(pk__lt=first_open)
    mark = settled.order_by("-pk").values_list("pk", flat=True).first()
    if mark is not None and mark > start:
        ExportWatermark.objects.filter(pk=watermark.pk).update(last_event_id=mark)
    if wake:
        events_drain_enqueue()
    if published:
        logger.info("outbox republished", extra={"events": published})
    return {"published": published, "watermark": max(start, mark or 0)}


def _announce(row: Interaction) -> None:
    """Send ``interaction_recorded``; a failing receiver never fails the write."""
    responses = interaction_recorded.send_robust(
        sender=Interaction,
        event_id=row.pk,
        user_id=row.user_id,
        movie_id=row.movie_id,
        kind=row.kind,
        positive=row.kind in POSITIVE_KINDS,
    )
    for receiver, response in responses:
        if isinstance(response, Exception):
            logger.warning(
                "interaction receiver failed",
                extra={
                    "event_id": row.pk,
                    "receiver": getattr(receiver, "__qualname__", repr(receiver)),
                },
                exc_info=response,
            )
