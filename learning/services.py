"""Writes to the interaction log."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apex_site.errors import ApplicationError, ErrorCode
from learning.errors import LearningErrorCode
from learning.models import POSITIVE_KINDS, Interaction
from learning.signals import interaction_recorded

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
        counts.loaded += len(fresh)
        counts.already_present += len(existing)
        if on_batch:
            on_batch(counts.read)
    return counts


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
) -> tuple[Interaction, bool]:
    """Append one live event; returns ``(row, created)``.

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
            )
    except IntegrityError:  # lost a race with the same key
        return Interaction.objects.get(idempotency_key=key), False
    logger.info("interaction recorded", extra={"kind": kind, "event_id": row.pk})
    transaction.on_commit(lambda: _announce(row))
    return row, True


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
