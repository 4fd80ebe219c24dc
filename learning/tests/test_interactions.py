import pytest

from apex_site.errors import ApplicationError
from catalog.tests.factories import MovieFactory
from learning import selectors, services
from learning.models import Interaction
from learning.tests.factories import InteractionFactory

pytestmark = pytest.mark.django_db


def test_the_same_idempotency_key_never_makes_a_second_row(user):
    movie = MovieFactory()
    first, created = services.interaction_record(
        user_id=user.pk, movie_id=movie.pk, kind="click", idempotency_key="k1"
    )
    again, created_again = services.interaction_record(
        user_id=user.pk, movie_id=movie.pk, kind="click", idempotency_key="k1"
    )
    assert created and not created_again and first.pk == again.pk
    assert Interaction.objects.count() == 1


def test_ratings_must_be_half_stars_between_half_and_five(user):
    movie = MovieFactory()
    for bad in (0.0, 5.5, 3.3, None):
        with pytest.raises(ApplicationError) as error:
            services.interaction_record(
                user_id=user.pk, movie_id=movie.pk, kind="rating", value=bad
            )
        assert error.value.code == "invalid_rating"
    assert not Interaction.objects.exists()


def test_the_newest_rating_is_the_users_rating(user):
    movie = MovieFactory()
    InteractionFactory(user=user, movie=movie, value=2.0)
    InteractionFactory(user=user, movie=movie, value=4.5)
    assert selectors.user_rating(user_id=user.pk, movie_id=movie.pk) == 4.5
    assert selectors.rating_aggregates(movie_ids=[movie.pk]) == {movie.pk: (1, 4.5)}


def test_bulk_import_counts_rows_already_present(user):
    from datetime import UTC, datetime

    movie = MovieFactory()
    rows = [
        services.InteractionRow(
            user_id=user.pk,
            movie_id=movie.pk,
            kind="rating",
            value=float(v),
            occurred_at=datetime(2020, 1, v, tzinfo=UTC),
            source="test",
            idempotency_key=f"bulk:{v}",
        )
        for v in (1, 2, 3)
    ]
    first = services.interactions_bulk_import(rows=rows[:2], batch_size=1)
    second = services.interactions_bulk_import(rows=rows, batch_size=2)
    assert (first.loaded, first.already_present) == (2, 0)
    assert (second.read, second.loaded, second.already_present) == (3, 1, 2)
    assert Interaction.objects.count() == 3
