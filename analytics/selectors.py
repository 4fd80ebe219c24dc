"""Reads of the analytics app: the ledger, audits, evaluations, group keys."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model

from analytics.models import (
    FairnessAudit,
    OfflineEvaluation,
    PrivacyBudget,
    PrivacyRelease,
)

DATASET = "interactions"
DIMENSIONS = ("age_band", "gender", "occupation")
UNKNOWN = "unknown"
OTHER = "other"
# MovieLens' occupations (ML-100K's list; ML-1M's maps onto it): the public
# key list of the occupation dimension. Anything else counts as "other".
OCCUPATIONS = (
    "administrator", "artist", "doctor", "educator", "engineer",
    "entertainment", "executive", "healthcare", "homemaker", "lawyer",
    "librarian", "marketing", "none", "other", "programmer", "retired",
    "salesman", "scientist", "student", "technician", "writer",
)  # fmt: skip


def period_of(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m")


def group_keys(dimension: str) -> list[str]:
    """The public groups of a demographic dimension (never read from data)."""
    user_model = get_user_model()
    if dimension == "age_band":
        values = [str(v) for v in user_model.AgeBand.values]  # type: ignore[attr-defined]
    elif dimension == "gender":
        values = [str(v) for v in user_model.Gender.values]  # type: ignore[attr-defined]
    elif dimension == "occupation":
        values = list(OCCUPATIONS)
    else:
        raise ValueError(f"unknown dimension {dimension!r}")
    return [*values, UNKNOWN]


def group_of(dimension: str, value: str | None, keys: Iterable[str]) -> str:
    """A user's public group: blank is ``unknown``; an occupation outside the
    list is ``other`` (so no free text ever becomes a key)."""
    value = (value or "").strip().lower()
    if not value:
        return UNKNOWN
    if value in keys:
        return value
    return OTHER if dimension == "occupation" else UNKNOWN


def user_groups(*, user_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """``{user id: {dimension: group}}`` from the optional demographics on the
    user model (the only readers of those fields are fairness audits)."""
    keys = {d: set(group_keys(d)) for d in DIMENSIONS}
    rows = (
        get_user_model()
        .objects.filter(pk__in=list(user_ids))
        .values_list("pk", *DIMENSIONS)
    )
    return {
        row[0]: {d: group_of(d, row[i + 1], keys[d]) for i, d in enumerate(DIMENSIONS)}
        for row in rows
    }


# ------------------------------------------------------------------ ledger
def budget_list(*, months: int = 12) -> list[PrivacyBudget]:
    return list(PrivacyBudget.objects.all()[:months])


def budget_current(*, now: datetime | None = None) -> PrivacyBudget | None:
    return PrivacyBudget.objects.filter(dataset=DATASET, period=period_of(now)).first()


def release_list(*, limit: int = 50) -> list[PrivacyRelease]:
    return list(PrivacyRelease.objects.select_related("budget")[:limit])


# ------------------------------------------------------------------ audits
def audit_list(*, limit: int = 60) -> list[FairnessAudit]:
    return list(FairnessAudit.objects.all()[:limit])


def audit_latest(*, source: str | None = None) -> FairnessAudit | None:
    rows = FairnessAudit.objects.all()
    return (rows.filter(source=source) if source else rows).first()


def offline_evaluation(*, artifact_version: str) -> OfflineEvaluation | None:
    return OfflineEvaluation.objects.filter(artifact_version=artifact_version).first()


def offline_evaluation_latest() -> OfflineEvaluation | None:
    return OfflineEvaluation.objects.first()


def release_payload(release: PrivacyRelease, *, cached: bool) -> dict[str, Any]:
    """What the API and the dashboard show of a release."""
    budget = release.budget
    return {
        "release": release.query["release"],
        "dimension": release.query["dimension"],
        "dataset": budget.dataset,
        "period": budget.period,
        "epsilon": release.epsilon,
        "unit_of_privacy": "user",
        "max_contributions_per_user": release.max_contributions,
        "noise_scale": release.noise_scale,
        "mechanism": release.mechanism,
        "cached": cached,
        "released_at": release.created_at,
        "budget": {
            "epsilon_cap": budget.epsilon_cap,
            "epsilon_spent": budget.epsilon_spent,
            "epsilon_left": budget.epsilon_left,
        },
        "groups": release.result["groups"],
    }
