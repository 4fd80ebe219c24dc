"""A trained artifact over a small interaction log with demographics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts.tests.factories import UserFactory
from catalog.tests.factories import GenreFactory, MovieFactory
from learning.tests.factories import InteractionFactory


def planted_log(users: int = 40, movies_per_genre: int = 8) -> dict:
    """Three genres; each user first rates one movie of another genre, then
    six of the genre they like (its "cluster"): the held-out (last) movie is
    one of the liked genre. Even users are
    18-24 / female / students, odd users 35-44 / male / engineers."""
    genres = [GenreFactory(name=n) for n in ("Drama", "Comedy", "Horror")]
    movies = {
        g.name: [
            MovieFactory(title=f"{g.name} {i}", genres=[g])
            for i in range(movies_per_genre)
        ]
        for g in genres
    }
    names = [g.name for g in genres]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    people = []
    for u in range(users):
        even = u % 2 == 0
        person = UserFactory(
            age_band="18_24" if even else "35_44",
            gender="female" if even else "male",
            occupation="student" if even else "engineer",
        )
        people.append(person)
        liked = movies[names[u % 3]]
        other = movies[names[(u + 1) % 3]][u % movies_per_genre]
        watched = [other] + [liked[(u + k) % movies_per_genre] for k in range(6)]
        for k, movie in enumerate(watched):
            InteractionFactory(
                user=person,
                movie=movie,
                occurred_at=start + timedelta(hours=u, minutes=k),
            )
    return {"movies": movies, "users": people}


@pytest.fixture
def trained(db, settings, tmp_path):
    """The log above, trained into the current artifact (two fast members)."""
    from recommendations import services

    settings.APEX_ARTIFACTS_DIR = tmp_path / "artifacts"
    log = planted_log()
    result = services.model_train(
        dataset="db", members=("itemknn", "ease"), time_budget_s=20, seed=0
    )
    return {**log, "version": result.artifact_version}
