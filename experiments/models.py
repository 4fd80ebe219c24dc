"""A/B experiments and the impression log (one row per served list)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Experiment(models.Model):
    """An A/B test between variants of the serving policy.

    Users are assigned by GrowthBook's hash of ``key`` and their id
    (``recommendations.engine.bandits.assignment``): changing ``key``
    reshuffles everyone, so it cannot be edited once the experiment ran.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        RUNNING = "running", "running"
        STOPPED = "stopped", "stopped"

    key = models.SlugField(
        max_length=64, unique=True, help_text="The hash seed (GrowthBook's key)."
    )
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    coverage = models.FloatField(
        default=1.0, help_text="Share of users in the experiment (0-1)."
    )
    hash_version = models.PositiveSmallIntegerField(default=2)
    alpha = models.FloatField(
        default=0.05, help_text="Error rate of the always-valid stopping rule."
    )
    tau = models.FloatField(
        default=0.02,
        help_text="mSPRT mixing scale: a click-through difference worth finding.",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"


class Variant(models.Model):
    """One arm: a weights version, reranker settings, exploration."""

    class Exploration(models.TextChoices):
        NONE = "none", "off"
        EPSILON_GREEDY = "epsilon_greedy", "epsilon-greedy"
        THOMPSON = "thompson", "Thompson sampling"

    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="variants"
    )
    key = models.SlugField(max_length=32)
    position = models.PositiveSmallIntegerField(
        default=0, help_text="Order of the hash ranges; the first is the control."
    )
    share = models.FloatField(default=0.5, help_text="Traffic share (shares sum to 1).")
    weights_version = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Ensemble weights version to serve (empty: the active one).",
    )
    diversity = models.FloatField(
        null=True, blank=True, help_text="MMR diversity 0-1 (empty: the default)."
    )
    exploration = models.CharField(
        max_length=16, choices=Exploration.choices, default=Exploration.NONE
    )
    epsilon = models.FloatField(default=0.1)
    thompson_scale = models.FloatField(default=0.1)

    class Meta:
        ordering = ["experiment", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "key"], name="variant_key_per_experiment"
            )
        ]

    def __str__(self) -> str:
        return f"{self.experiment.key}/{self.key}"


class Impression(models.Model):
    """One served list (slate): what was shown, where, and how likely.

    ``items``: ``[{"movie_id", "position" (0-based), "score", "propensity"}]``;
    ``candidates`` (optional, for off-policy evaluation of new weights):
    ``{"movie_ids": [...], "members": {model: [score per candidate]}}``.
    Written in batches off the request path; ``request_id`` makes a
    re-delivered slate a no-op.
    """

    request_id = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,  # the log outlives deleted users; no FK check per insert
    )
    surface = models.CharField(max_length=32)
    weights_version = models.PositiveIntegerField(null=True, blank=True)
    experiment = models.CharField(max_length=64, blank=True, default="")
    variant = models.CharField(max_length=32, blank=True, default="")
    policy = models.CharField(max_length=16, default="greedy")
    items = models.JSONField()
    candidates = models.JSONField(null=True, blank=True)
    served_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-served_at"]
        indexes = [
            models.Index(
                fields=["experiment", "variant", "served_at"],
                name="impression_experiment_idx",
            ),
            models.Index(fields=["served_at"], name="impression_served_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} ({self.surface}, {len(self.items)} items)"
