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
    # The served list (impression) this event came from, when the client says.
    request_id = models.CharField(max_length=64, null=True, blank=True)
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
            # the events of a served list (the join of clicks to impressions);
            # partial: most events name no list
            models.Index(
                fields=["request_id"],
                name="interaction_request_idx",
                condition=models.Q(request_id__isnull=False),
            ),
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


class AppliedEvent(models.Model):
    """An event the online coordinator has applied (``learning.coordinator``):
    the stream may deliver an event twice (a re-claim, an outbox republish),
    its updates happen once."""

    event_id = models.BigIntegerField(primary_key=True)
    applied_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"event {self.event_id}"


class UserProfile(models.Model):
    """A user's real-time profile, updated per applied event.

    ``recent``: the newest events, newest first, as ``[event_id, movie_id,
    kind, epoch seconds]`` (at most ``coordinator.RECENT_EVENTS``), from which
    the sliding-window counts are read; ``genre_affinity``: exponentially
    decayed counts per genre name of the positive events (half-life
    ``coordinator.AFFINITY_HALF_LIFE_DAYS``), as of ``last_event_at``.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="realtime_profile",
    )
    recent = models.JSONField(default=list)
    genre_affinity = models.JSONField(default=dict)
    events_applied = models.PositiveIntegerField(default=0)
    session_number = models.PositiveIntegerField(default=0)
    session_started_at = models.DateTimeField(null=True, blank=True)
    session_events = models.PositiveIntegerField(default=0)
    last_event_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"profile of {self.user_id}"


class ItemActivity(models.Model):
    """Live popularity of a movie: every positive event, and a decayed recent
    count (half-life ``coordinator.RECENT_HALF_LIFE_HOURS``) as of
    ``last_event_at``."""

    movie = models.OneToOneField(
        "catalog.Movie", on_delete=models.CASCADE, primary_key=True
    )
    events = models.PositiveBigIntegerField(default=0)
    recent = models.FloatField(default=0.0)
    last_event_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.movie_id}: {self.events}"


class ItemTransition(models.Model):
    """How often a user's positive event on ``to_movie`` directly followed one
    on ``from_movie`` (the sequence signal), counted per applied event."""

    from_movie = models.ForeignKey(
        "catalog.Movie", on_delete=models.CASCADE, related_name="+"
    )
    to_movie = models.ForeignKey(
        "catalog.Movie", on_delete=models.CASCADE, related_name="+"
    )
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["from_movie", "to_movie"], name="item_transition_pair"
            )
        ]

    def __str__(self) -> str:
        return f"{self.from_movie_id} -> {self.to_movie_id}: {self.count}"


class DeadLetter(models.Model):
    """A stream entry the coordinator gave up on after ``MAX_DELIVERIES``
    failed deliveries (also copied to the dead-letter stream)."""

    event_id = models.BigIntegerField(db_index=True)
    entry_id = models.CharField(max_length=64)
    deliveries = models.PositiveIntegerField()
    error = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"event {self.event_id} after {self.deliveries} deliveries"
