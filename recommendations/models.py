"""Versioned ensemble weights: what blends the member models in production."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


class EnsembleWeights(models.Model):
    """One version of the ensemble's blend weights and how they were chosen.

    Exactly one version is ``active`` at a time (a partial unique constraint);
    ``manage.py debias`` writes ``proposed`` versions and staff activate one
    in the admin, which retires the previous active version.
    """

    class Status(models.TextChoices):
        PROPOSED = "proposed", "proposed"
        ACTIVE = "active", "active"
        RETIRED = "retired", "retired"

    version = models.PositiveIntegerField(unique=True, editable=False)
    weights = models.JSONField(help_text='Per member model, e.g. {"sasrec": 0.4}.')
    normalisation = models.CharField(max_length=16, default="zscore")
    objective = models.CharField(
        max_length=16, default="dr", help_text="What the weight search maximised."
    )
    estimated_value = models.FloatField(
        null=True, blank=True, help_text="The objective's validation estimate."
    )
    estimates = models.JSONField(
        default=dict, blank=True, help_text="DR, IPS, SNIPS and NDCG@10 with intervals."
    )
    gate_threshold = models.FloatField(
        null=True, blank=True, help_text="Uncertainty gate threshold (empty: never)."
    )
    fitted_on = models.JSONField(
        default=dict, blank=True, help_text="The data the weights were fitted on."
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PROPOSED, db_index=True
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-version"]
        verbose_name = "ensemble weights version"
        verbose_name_plural = "ensemble weights"
        constraints = [
            models.UniqueConstraint(
                fields=["status"],
                condition=Q(status="active"),
                name="one_active_ensemble_weights",
            )
        ]

    def __str__(self) -> str:
        return f"v{self.version} ({self.status})"

    def clean(self) -> None:
        from recommendations.engine.models.registry import MODELS

        if not isinstance(self.weights, dict) or not self.weights:
            raise ValidationError({"weights": "a JSON object {model: weight}"})
        for name, weight in self.weights.items():
            if name not in MODELS or name == "ensemble":
                raise ValidationError({"weights": f"unknown model {name!r}"})
            if not isinstance(weight, int | float) or weight < 0:
                raise ValidationError({"weights": f"{name}: weights must be >= 0"})
        total = sum(self.weights.values())
        if abs(total - 1.0) > 1e-3:
            raise ValidationError(
                {"weights": f"weights must sum to 1 (got {total:.4f})"}
            )

    @property
    def active_members(self) -> list[str]:
        return [n for n, w in self.weights.items() if w > 0]
