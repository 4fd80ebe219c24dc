"""Movies and what describes them: genres, people, keywords, collections.

A movie can come from several MovieLens releases. ML-100K numbers its movies
in its own id space (``ml100k_id``); ML-1M, ml-latest(-small), ML-20M and
ML-25M share one (``movielens_id``). Loaders merge the two by normalised
title + year so the catalog holds each film once.
"""

from __future__ import annotations

from django.contrib.postgres.search import SearchVectorField
from django.db import models


class Genre(models.Model):
    name = models.CharField(max_length=64, unique=True)
    slug = models.SlugField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Keyword(models.Model):
    name = models.CharField(max_length=128, unique=True)
    tmdb_id = models.BigIntegerField(null=True, blank=True, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Person(models.Model):
    """An actor or director.

    The CSV imports know people only by name, so two namesakes share a row
    until the TMDB API gives them distinct ``tmdb_id``s.
    """

    name = models.CharField(max_length=200, db_index=True)
    tmdb_id = models.BigIntegerField(null=True, blank=True, unique=True)
    profile_path = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "people"

    def __str__(self) -> str:
        return self.name


class Collection(models.Model):
    """A franchise (TMDB "collection"), e.g. the Toy Story films."""

    name = models.CharField(max_length=200)
    tmdb_id = models.BigIntegerField(null=True, blank=True, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Movie(models.Model):
    movielens_id = models.BigIntegerField(
        null=True, blank=True, unique=True, help_text="ML-1M / ml-latest / ML-25M id."
    )
    ml100k_id = models.BigIntegerField(
        null=True, blank=True, unique=True, help_text="ML-100K id (own id space)."
    )
    tmdb_id = models.BigIntegerField(null=True, blank=True, unique=True)
    imdb_id = models.CharField(max_length=16, blank=True, help_text="e.g. tt0114709")

    title = models.CharField(max_length=300)
    original_title = models.CharField(max_length=300, blank=True)
    year = models.SmallIntegerField(null=True, blank=True)
    release_date = models.DateField(null=True, blank=True)
    overview = models.TextField(blank=True)
    tagline = models.CharField(max_length=500, blank=True)
    runtime = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Minutes."
    )
    original_language = models.CharField(max_length=12, blank=True)
    poster_path = models.CharField(max_length=200, blank=True)
    trailer_key = models.CharField(max_length=64, blank=True)

    # TMDB's own numbers, shown as-is.
    vote_average = models.FloatField(null=True, blank=True)
    vote_count = models.PositiveIntegerField(null=True, blank=True)
    tmdb_popularity = models.FloatField(null=True, blank=True)
    # Our users' ratings, denormalised so browse can sort without aggregating
    # the interaction log on every request (refreshed by the loaders and by
    # every rating written through catalog.services).
    rating_count = models.PositiveIntegerField(default=0)
    rating_mean = models.FloatField(null=True, blank=True)

    collection = models.ForeignKey(
        Collection,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="movies",
    )
    genres = models.ManyToManyField(Genre, blank=True, related_name="movies")
    keywords = models.ManyToManyField(Keyword, blank=True, related_name="movies")
    people = models.ManyToManyField(
        Person, through="Credit", blank=True, related_name="movies"
    )

    # Full-text document, filled by catalog.services.movie_search_vectors_refresh
    # on PostgreSQL (its GIN index is created by a PostgreSQL-only migration);
    # unused on SQLite.
    search_vector = SearchVectorField(null=True, blank=True, editable=False)
    # Key for matching by title + year across sources (see catalog.matching).
    match_key = models.CharField(max_length=300, blank=True, db_index=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "id"]
        indexes = [
            models.Index(fields=["-rating_count", "id"], name="movie_popularity_idx"),
            models.Index(fields=["-rating_mean", "id"], name="movie_rating_idx"),
            models.Index(fields=["year"], name="movie_year_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.year})" if self.year else self.title

    @property
    def genre_names(self) -> list[str]:
        """Genre names; catalog.selectors may have fetched them with the row."""
        fetched = getattr(self, "genre_names_agg", None)
        if fetched is not None:
            return list(fetched)
        return [g.name for g in self.genres.all()]


class Credit(models.Model):
    class Role(models.TextChoices):
        DIRECTOR = "director", "Director"
        CAST = "cast", "Cast"

    movie = models.ForeignKey(Movie, on_delete=models.CASCADE, related_name="credits")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="credits")
    role = models.CharField(max_length=16, choices=Role.choices)
    order = models.PositiveSmallIntegerField(default=0, help_text="Billing order.")
    character = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["movie", "role", "order"]
        constraints = [
            models.UniqueConstraint(
                fields=["movie", "person", "role"], name="catalog_credit_unique"
            )
        ]
        indexes = [models.Index(fields=["person", "role"], name="credit_person_idx")]

    def __str__(self) -> str:
        return f"{self.person} — {self.get_role_display()} — {self.movie}"
