"""Writes of the analytics app: private releases through the budget ledger,
fairness audits (``analytics.audits``)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import status

from analytics import audits, privacy, selectors
from analytics.errors import AnalyticsErrorCode as Code
from analytics.models import PrivacyBudget, PrivacyRelease
from apex_site.errors import ApplicationError
from billing import selectors as billing_selectors
from catalog import selectors as catalog_selectors
from learning import selectors as learning_selectors

logger = logging.getLogger(__name__)

RELEASES = ("genre_counts", "top_movies")
MAX_TOP_N = 50


@dataclass(frozen=True)
class ReleaseAnswer:
    release: PrivacyRelease
    cached: bool


def analytics_allowed(*, user: Any) -> bool:
    """Staff, or a user whose plan includes the analytics API."""
    if not user or not user.is_authenticated:
        return False
    if user.is_staff:
        return True
    return bool(billing_selectors.user_entitlements(user=user).plan.analytics_api)


def query_key(query: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()


def _records(release: str, dimension: str) -> tuple[list[str], list[tuple[int, str]]]:
    """The public keys and the ``(user_id, key)`` records of one release."""
    groups = selectors.group_keys(dimension)
    known = set(groups)
    pairs = list(learning_selectors.positive_pairs_with_user_field(field=dimension))
    if release == "genre_counts":
        genres = sorted(g.name for g in catalog_selectors.genre_list())
        movie_genres = catalog_selectors.movie_genre_names(
            movie_ids={movie_id for _, movie_id, _ in pairs}
        )
        keys = [f"{g}|{genre}" for g in groups for genre in genres]
        records = [
            (user_id, f"{selectors.group_of(dimension, value, known)}|{genre}")
            for user_id, movie_id, value in pairs
            for genre in movie_genres.get(movie_id, ())
        ]
    else:
        movie_ids = sorted(catalog_selectors.popular_ids(n=10**9))
        keys = [f"{g}|{m}" for g in groups for m in movie_ids]
        records = [
            (user_id, f"{selectors.group_of(dimension, value, known)}|{movie_id}")
            for user_id, movie_id, value in pairs
        ]
    return keys, records


def _result(release: str, dimension: str, noisy: privacy.NoisyCounts, n: int) -> dict:
    by_group: dict[str, dict[str, int]] = {}
    for key, count in zip(noisy.keys, noisy.counts, strict=True):
        group, _, cell = key.partition("|")
        by_group.setdefault(group, {})[cell] = count
    if release == "genre_counts":
        groups = [{"group": g, "counts": cells} for g, cells in by_group.items()]
    else:
        top = {
            g: sorted(cells.items(), key=lambda kv: (-kv[1], int(kv[0])))[:n]
            for g, cells in by_group.items()
        }
        titles = catalog_selectors.movie_titles(
            movie_ids={int(m) for rows in top.values() for m, _ in rows}
        )
        groups = [
            {
                "group": g,
                "movies": [
                    {"movie_id": int(m), "title": titles.get(int(m), ""), "count": c}
                    for m, c in rows
                ],
            }
            for g, rows in top.items()
        ]
    return {
        "groups": groups,
        "records_kept": noisy.records_kept,
        "records_dropped": noisy.records_dropped,
    }


def dp_release(
    *,
    release: str,
    dimension: str,
    epsilon: float | None = None,
    n: int = 10,
    requested_by: int | None = None,
    now: datetime | None = None,
) -> ReleaseAnswer:
    """A differentially private release of the interaction log (see
    ``analytics.privacy`` for the guarantee), charged to this month's budget.

    The same query (release, dimension, epsilon, n) in the same month is
    answered from its stored release and spends nothing. A release that
    would take the month past its cap raises ``privacy_budget_exhausted``
    (409) and spends nothing. The budget row is locked while a release is
    computed, so concurrent requests can never overspend.
    """
    if release not in RELEASES:
        raise ApplicationError(f"Unknown release {release!r}.", detail=list(RELEASES))
    if dimension not in selectors.DIMENSIONS:
        raise ApplicationError(
            f"Unknown dimension {dimension!r}.", detail=list(selectors.DIMENSIONS)
        )
    epsilon = float(epsilon or settings.APEX_DP_DEFAULT_EPSILON)
    if not 0 < epsilon <= settings.APEX_DP_EPSILON_CAP:
        raise ApplicationError("epsilon must be above 0 and within the monthly cap.")
    n = max(1, min(int(n), MAX_TOP_N))
    max_contributions = settings.APEX_DP_MAX_CONTRIBUTIONS
    query = {
        "release": release,
        "dimension": dimension,
        "epsilon": epsilon,
        "max_contributions": max_contributions,
        **({"n": n} if release == "top_movies" else {}),
    }
    key = query_key(query)
    period = selectors.period_of(now)
    budget, _ = PrivacyBudget.objects.get_or_create(
        dataset=selectors.DATASET,
        period=period,
        defaults={"epsilon_cap": settings.APEX_DP_EPSILON_CAP},
    )
    with transaction.atomic():
        budget = PrivacyBudget.objects.select_for_update().get(pk=budget.pk)
        earlier = PrivacyRelease.objects.filter(budget=budget, query_key=key).first()
        if earlier is not None:
            return ReleaseAnswer(release=earlier, cached=True)
        if budget.epsilon_spent + epsilon > budget.epsilon_cap + 1e-9:
            raise ApplicationError(
                "The privacy budget of this period cannot pay for this release.",
                code=Code.PRIVACY_BUDGET_EXHAUSTED,
                status_code=status.HTTP_409_CONFLICT,
                detail={
                    "dataset": budget.dataset,
                    "period": budget.period,
                    "epsilon_requested": epsilon,
                    "epsilon_left": budget.epsilon_left,
                    "epsilon_cap": budget.epsilon_cap,
                },
            )
        started = time.perf_counter()
        keys, records = _records(release, dimension)
        noisy = privacy.noisy_counts(
            records,
            keys=keys,
            epsilon=epsilon,
            max_contributions=max_contributions,
            seed=int(key[:8], 16),
        )
        result = _result(release, dimension, noisy, n)
        seconds = time.perf_counter() - started
        made = PrivacyRelease.objects.create(
            budget=budget,
            query_key=key,
            query=query,
            epsilon=epsilon,
            noise_scale=noisy.scale,
            max_contributions=max_contributions,
            mechanism=privacy.MECHANISM,
            result=result,
            seconds=seconds,
            requested_by=requested_by,
        )
        budget.epsilon_spent += epsilon
        budget.save(update_fields=["epsilon_spent", "updated_at"])
    logger.info(
        "private release made",
        extra={
            "release": release,
            "dimension": dimension,
            "epsilon": epsilon,
            "period": period,
            "epsilon_spent": budget.epsilon_spent,
            "seconds": round(seconds, 3),
        },
    )
    return ReleaseAnswer(release=made, cached=False)


def fairness_audit_run(*, now: datetime | None = None) -> dict[str, Any]:
    """The periodic audit (beat, ``APEX_FAIRNESS_AUDIT_HOURS``): the current
    artifact on held-out users, and what was served since the previous
    served audit (at most ``APEX_FAIRNESS_AUDIT_HOURS`` back). A part that
    has nothing to audit (no artifact, no slate) is reported, not raised."""
    now = now or timezone.now()
    out: dict[str, Any] = {}
    try:
        audit, evaluation = audits.evaluate_artifact()
    except ApplicationError as exc:
        out["offline"] = {"skipped": exc.code, "message": exc.message}
    else:
        out["offline"] = {
            "audit_id": audit.pk,
            "evaluation_id": evaluation.pk,
            "alerts": len(audit.alerts),
        }
    window = timedelta(hours=max(settings.APEX_FAIRNESS_AUDIT_HOURS, 1))
    last = selectors.audit_latest(source="served")
    # the previous served audit ended when it was created
    since = max(now - window, last.created_at) if last else now - window
    try:
        served = audits.audit_served(since=since, until=now)
    except ApplicationError as exc:
        out["served"] = {"skipped": exc.code, "message": exc.message}
    else:
        out["served"] = {"audit_id": served.pk, "alerts": len(served.alerts)}
    return out
