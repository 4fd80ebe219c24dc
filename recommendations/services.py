from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from recommendations.models import EnsembleWeights
from recommendations.serving import broadcast


def feed_group_name(user_id: int) -> str:
    return f"feed.user.{user_id}"


def feed_push(*, user_id: int, payload: dict) -> None:
    """Send a fresh feed to every open tab of the user, after the transaction
    that produced it commits (a rolled-back change is never announced)."""

    def send() -> None:
        layer = get_channel_layer()
        async_to_sync(layer.group_send)(
            feed_group_name(user_id), {"type": "feed.update", "payload": payload}
        )

    transaction.on_commit(send)


@transaction.atomic
def propose_weights(
    *, fit: dict[str, Any], created_by=None, notes: str = ""
) -> EnsembleWeights:
    """Store a weight fit (``fit_ensemble_weights``' output) as a proposed version."""
    last = EnsembleWeights.objects.select_for_update().aggregate(v=Max("version"))["v"]
    gate = fit.get("gate") or {}
    weights = EnsembleWeights(
        version=(last or 0) + 1,
        weights=fit["weights"],
        normalisation=fit.get("normalisation", "zscore"),
        objective=fit.get("objective", "dr"),
        estimated_value=fit.get("estimated_value"),
        estimates=fit.get("estimates", {}),
        gate_threshold=gate.get("threshold"),
        fitted_on=fit.get("fitted_on", {}),
        created_by=created_by,
        notes=notes,
    )
    weights.full_clean()
    weights.save()
    return weights


@transaction.atomic
def activate_weights(*, version: int) -> EnsembleWeights:
    """Make ``version`` the active one; the previous active version is retired.

    After the commit the change is announced to every serving process
    (``serving.broadcast``), which re-applies the active weights to the
    engine it serves within ``APEX_RELOAD_POLL_SECONDS``.
    """
    chosen = EnsembleWeights.objects.select_for_update().get(version=version)
    if chosen.status == EnsembleWeights.Status.ACTIVE:
        return chosen
    EnsembleWeights.objects.filter(status=EnsembleWeights.Status.ACTIVE).update(
        status=EnsembleWeights.Status.RETIRED
    )
    chosen.status = EnsembleWeights.Status.ACTIVE
    chosen.activated_at = timezone.now()
    chosen.save(update_fields=["status", "activated_at"])
    transaction.on_commit(broadcast.announce)
    return chosen
