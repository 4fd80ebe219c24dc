"""Analytics data: the privacy-budget ledger and its releases, fairness
audits, offline evaluations. Per-minute SLO counts live in Redis (see
``analytics/slo.py``), never here: the request path stays off the database."""

from __future__ import annotations

from django.db import models


class PrivacyBudget(models.Model):
    """What one data set may still give away in one period (a calendar month,
    UTC): the releases' epsilons add up (basic sequential composition)."""

    dataset = models.CharField(max_length=64)
    period = models.CharField(max_length=7, help_text="YYYY-MM (UTC)")
    epsilon_cap = models.FloatField()
    epsilon_spent = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "period"], name="analytics_budget_unique_period"
            ),
            models.CheckConstraint(
                condition=models.Q(epsilon_spent__lte=models.F("epsilon_cap") + 1e-9),
                name="analytics_budget_within_cap",
            ),
        ]
        ordering = ["-period", "dataset"]

    def __str__(self) -> str:
        return (
            f"{self.dataset} {self.period}: {self.epsilon_spent:g}/{self.epsilon_cap:g}"
        )

    @property
    def epsilon_left(self) -> float:
        return max(self.epsilon_cap - self.epsilon_spent, 0.0)


class PrivacyRelease(models.Model):
    """One noisy release, kept so an identical query in the same period is
    answered from here instead of spending budget on fresh noise."""

    budget = models.ForeignKey(
        PrivacyBudget, on_delete=models.PROTECT, related_name="releases"
    )
    query_key = models.CharField(max_length=64, help_text="SHA-256 of the query")
    query = models.JSONField()
    epsilon = models.FloatField()
    noise_scale = models.FloatField()
    max_contributions = models.PositiveIntegerField()
    mechanism = models.CharField(max_length=128)
    result = models.JSONField()
    seconds = models.FloatField(default=0.0)
    requested_by = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "query_key"], name="analytics_release_unique_query"
            )
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.query.get('release')} eps={self.epsilon:g}"


class FairnessAudit(models.Model):
    class Source(models.TextChoices):
        OFFLINE = "offline", "Offline lists (held-out users)"
        SERVED = "served", "Served impressions"

    created_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    artifact_version = models.CharField(max_length=128, blank=True)
    dataset = models.CharField(max_length=128, blank=True)
    users = models.PositiveIntegerField()
    metrics = models.JSONField()
    alerts = models.JSONField(default=list, blank=True)
    seconds = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"audit {self.pk} {self.source} {self.artifact_version}"


class OfflineEvaluation(models.Model):
    """An artifact's full-ranking evaluation on held-out users (each member
    and the ensemble), written by the same run as its fairness audit."""

    created_at = models.DateTimeField(auto_now_add=True)
    artifact_version = models.CharField(max_length=128, db_index=True)
    protocol = models.JSONField()
    data_snapshot = models.JSONField()
    results = models.JSONField(help_text="{model name: metrics}")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"evaluation {self.artifact_version}"
