"""Writes of the experiments app: the impression log and experiment state.

**Where serving calls it.** After a list is served (API and pages), the
serving code calls :func:`slate_record` once with the request id it returns
to the client; it costs one Redis ``RPUSH`` and never raises. Which variant
to serve comes from ``experiments.selectors.assignment_for``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from experiments.buffer import MAX_LENGTH, get_impression_buffer
from experiments.models import Experiment, Impression

logger = logging.getLogger(__name__)

KICK_KEY = "experiments:flush-kick"
KICK_TTL_S = 5
SURFACE_MAX = 32


def slate_record(
    *,
    request_id: str,
    user_id: int | None,
    surface: str,
    items: Sequence[Mapping[str, Any]],
    policy: Mapping[str, Any] | None = None,
    candidates: Mapping[str, Any] | None = None,
    served_at: datetime | None = None,
) -> bool:
    """Queue one served list for the impression log; ``False`` when not queued.

    Args:
        request_id: the id the response carries (events name it).
        user_id: the user served (``None``: anonymous).
        surface: where it was shown, e.g. ``api:recommendations``, ``page:home``.
        items: per shown item, best first: ``movie_id``, ``score`` and
            ``propensity`` (1 for a deterministic list); ``position`` defaults
            to the index.
        policy: ``weights_version``, ``experiment``, ``variant``, ``policy``
            (``greedy`` | ``epsilon_greedy`` | ``thompson``).
        candidates: optional, for off-policy evaluation of new weights:
            ``{"movie_ids": [...], "members": {model: [score, ...]}}``.

    Cheap and safe on the request path: no database query, one Redis round
    trip, never raises (a failure is one WARNING and ``False``).
    """
    if not settings.APEX_IMPRESSIONS_ENABLED:
        return False
    try:
        policy = policy or {}
        slate = {
            "request_id": str(request_id)[:64],
            "user_id": user_id,
            "surface": str(surface)[:SURFACE_MAX],
            "weights_version": policy.get("weights_version"),
            "experiment": policy.get("experiment") or "",
            "variant": policy.get("variant") or "",
            "policy": policy.get("policy") or "greedy",
            "items": [
                {
                    "movie_id": int(item["movie_id"]),
                    "position": int(item.get("position", k)),
                    "score": _finite(item.get("score")),
                    "propensity": float(item.get("propensity", 1.0)),
                }
                for k, item in enumerate(items)
            ],
            "candidates": dict(candidates) if candidates else None,
            "served_at": (served_at or timezone.now()).isoformat(),
        }
        buffer = get_impression_buffer()
        length = buffer.push(json.dumps(slate, separators=(",", ":")))
    except Exception as exc:  # noqa: BLE001 - never fail a served list
        logger.warning(
            "impression not recorded",
            extra={"request_id": request_id, "error": str(exc)},
        )
        return False
    if length >= settings.APEX_IMPRESSIONS_BATCH:
        impressions_flush_kick()
    if length > MAX_LENGTH:
        logger.warning("impression buffer overfull", extra={"length": length})
    return True


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def impressions_flush_kick() -> None:
    """Enqueue one ``experiments.flush_impressions`` unless one is waiting."""
    from experiments.tasks import flush_impressions

    try:
        first = cache.add(KICK_KEY, 1, timeout=KICK_TTL_S)
    except Exception:  # noqa: BLE001 - no cache: kick anyway
        first = True
    if not first:
        return
    try:
        flush_impressions.delay()
    except Exception as exc:  # noqa: BLE001 - beat flushes anyway
        logger.warning("impression flush not enqueued", extra={"error": str(exc)})


@dataclass(frozen=True)
class FlushResult:
    read: int
    inserted: int
    malformed: int
    locked: bool = False  # another flush held the lock: nothing done

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _row(payload: str) -> Impression | None:
    try:
        s = json.loads(payload)
        served_at = parse_datetime(s["served_at"])
        if served_at is None or not s["request_id"]:
            return None
        return Impression(
            request_id=s["request_id"],
            user_id=s.get("user_id"),
            surface=s["surface"],
            weights_version=s.get("weights_version"),
            experiment=s.get("experiment") or "",
            variant=s.get("variant") or "",
            policy=s.get("policy") or "greedy",
            items=s["items"],
            candidates=s.get("candidates"),
            served_at=served_at,
        )
    except (ValueError, KeyError, TypeError):
        return None


def impressions_flush(
    *, batch: int | None = None, max_batches: int = 100
) -> FlushResult:
    """Move buffered slates to the impression log (at least once, de-duplicated).

    Each batch is read, inserted (``ON CONFLICT DO NOTHING`` on
    ``request_id``) and committed before it is trimmed from the buffer.
    Malformed entries are dropped with one WARNING per batch.
    """
    size = batch or settings.APEX_IMPRESSIONS_BATCH
    buffer = get_impression_buffer()
    if not buffer.lock(timeout_s=120):
        return FlushResult(0, 0, 0, locked=True)
    read = inserted = malformed = 0
    try:
        for _ in range(max_batches):
            payloads = buffer.peek(size)
            if not payloads:
                break
            rows = [_row(p) for p in payloads]
            good = list({r.request_id: r for r in rows if r is not None}.values())
            bad = sum(r is None for r in rows)
            with transaction.atomic():
                known = set(
                    Impression.objects.filter(
                        request_id__in=[r.request_id for r in good]
                    ).values_list("request_id", flat=True)
                )
                Impression.objects.bulk_create(
                    good, ignore_conflicts=True, batch_size=1000
                )
            buffer.trim(len(payloads))
            read += len(payloads)
            inserted += len(good) - len(known)
            malformed += bad
            if bad:
                logger.warning("malformed impressions dropped", extra={"count": bad})
    finally:
        buffer.unlock()
    if read:
        logger.info("impressions flushed", extra={"read": read, "malformed": malformed})
    return FlushResult(read, inserted, malformed)


# ------------------------------------------------------------------ experiments
def experiment_start(*, experiment: Experiment) -> Experiment:
    """Start (or resume) an experiment; its key is frozen from now on."""
    experiment.status = Experiment.Status.RUNNING
    experiment.started_at = experiment.started_at or timezone.now()
    experiment.stopped_at = None
    experiment.save(update_fields=["status", "started_at", "stopped_at"])
    transaction.on_commit(_forget_running)
    return experiment


def experiment_stop(*, experiment: Experiment) -> Experiment:
    experiment.status = Experiment.Status.STOPPED
    experiment.stopped_at = timezone.now()
    experiment.save(update_fields=["status", "stopped_at"])
    transaction.on_commit(_forget_running)
    return experiment


def _forget_running() -> None:
    from experiments import selectors

    selectors.running_experiments_forget()
