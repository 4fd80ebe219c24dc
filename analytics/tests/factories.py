"""Tiny data with known answers for the analytics tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from accounts.tests.factories import UserFactory
from catalog.tests.factories import GenreFactory, MovieFactory
from learning.models import Interaction
from learning.tests.factories import InteractionFactory


def small_log(*, heavy_events: int = 30) -> dict:
    """Two genres, four movies, three users with demographics: ``light``
    (18-24, female) rated two dramas; ``heavy`` (25-34, male) has
    ``heavy_events`` events spread over every movie; ``blank`` has no
    demographics and one comedy."""
    drama, comedy = GenreFactory(name="Drama"), GenreFactory(name="Comedy")
    movies = [
        MovieFactory(title="D1", genres=[drama]),
        MovieFactory(title="D2", genres=[drama]),
        MovieFactory(title="C1", genres=[comedy]),
        MovieFactory(title="DC", genres=[drama, comedy]),
    ]
    light = UserFactory(age_band="18_24", gender="female", occupation="student")
    heavy = UserFactory(age_band="25_34", gender="male", occupation="astronaut")
    blank = UserFactory()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    InteractionFactory(user=light, movie=movies[0], occurred_at=start)
    InteractionFactory(user=light, movie=movies[1], occurred_at=start)
    for i in range(heavy_events):
        InteractionFactory(
            user=heavy,
            movie=movies[i % 4],
            kind=Interaction.Kind.CLICK,
            value=None,
            occurred_at=start + timedelta(minutes=i),
        )
    InteractionFactory(user=blank, movie=movies[2], occurred_at=start)
    return {"movies": movies, "light": light, "heavy": heavy, "blank": blank}
