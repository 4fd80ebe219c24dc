"""The interaction log: every rating, click, watch and watchlist change.

Imported MovieLens ratings and live events share this one append-only table,
so training, debiasing and the ETL read a single history. Current state (a
user's rating of a movie, whether it is on the watchlist) is the newest row of
that kind for the pair.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Interaction(models.Model):
    class Kind(models.TextChoices):
        RATING = "rating", "Rating"
        CLICK = "click", "Click"
        WATCH = "watch", "Watch"
        WATCHLIST = "watchlist", "Watchlist"

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="interactions"
    )
    movie = models.ForeignKey(
        "catalog.Movie", on_delete=models.CASCADE, related_name="interactions"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # rating: stars (0.5-5); watchlist: 1 added / 0 removed; watch: fraction
    # watched when known; click: empty.
    value = models.FloatField(null=True, blank=True)
    occurred_at = models.DateTimeField()
    source = models.CharField(
        max_length=40, help_text='"web", "api", or "movielens:<dataset>"'
    )
    # Makes every write retry-safe: the same key never makes a second row.
    idempotency_key = models.CharField(max_length=128, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            # the user's current rating / watchlist state of one movie
            models.Index(
                fields=["user", "movie", "kind", "-occurred_at"],
                name="interaction_user_movie_idx",
            ),
            # a user's history, newest first (feeds, demo copy)
            models.Index(fields=["user", "-occurred_at"], name="interaction_user_idx"),
            # rating distribution and counts of one movie
            models.Index(fields=["movie", "kind"], name="interaction_movie_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind} {self.movie_id} = {self.value}"


# What counts as positive (implicit) feedback: consumption, whatever the
# stars. Watchlist events are intent and are left out. Training, the served
# history and the live-feed refresh all read this one definition.
POSITIVE_KINDS: tuple[str, ...] = (
    Interaction.Kind.RATING,
    Interaction.Kind.WATCH,
    Interaction.Kind.CLICK,
)


class ExportWatermark(models.Model):
    """How far an incremental export has got (the last exported event id)."""

    name = models.CharField(max_length=64, unique=True)
    last_event_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_event_id}"
