import pytest

from catalog.tests.factories import (
    CreditFactory,
    GenreFactory,
    KeywordFactory,
    MovieFactory,
)
from learning.tests.factories import InteractionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog():
    comedy, drama = GenreFactory(name="Comedy"), GenreFactory(name="Drama")
    return {
        "old_comedy": MovieFactory(
            title="Old Comedy", year=1952, genres=[comedy], rating_count=3,
            rating_mean=4.0,
        ),
        "nineties_comedy": MovieFactory(
            title="Nineties Comedy", year=1994, genres=[comedy], rating_count=50,
            rating_mean=3.2,
        ),
        "nineties_drama": MovieFactory(
            title="Nineties Drama", year=1999, genres=[drama], rating_count=20,
            rating_mean=4.6,
        ),
        "one_vote_wonder": MovieFactory(
            title="One Vote", year=2001, genres=[drama], rating_count=1, rating_mean=5.0
        ),
    }  # fmt: skip


def _titles(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [m["title"] for m in response.json()["results"]]


def test_the_list_is_public_and_most_rated_first(api_client, catalog):
    response = api_client.get("/v1/catalog/movies")
    assert _titles(response) == [
        "Nineties Comedy",
        "Nineties Drama",
        "Old Comedy",
        "One Vote",
    ]
    first = response.json()["results"][0]
    assert first["genres"] == ["Comedy"]
    assert first["poster_url"].endswith(
        f"/catalog/movies/{catalog['nineties_comedy'].pk}/poster.svg"
    )


def test_it_filters_by_genre_and_decade(api_client, catalog):
    assert _titles(api_client.get("/v1/catalog/movies?genre=comedy&decade=1990")) == [
        "Nineties Comedy"
    ]
    assert _titles(api_client.get("/v1/catalog/movies?decade=1950")) == ["Old Comedy"]


def test_rating_order_does_not_let_one_vote_win(api_client, catalog):
    titles = _titles(api_client.get("/v1/catalog/movies?ordering=rating"))
    assert titles[0] == "Nineties Drama"
    assert titles.index("One Vote") > titles.index("Nineties Drama")


def test_it_orders_by_year_both_ways(api_client, catalog):
    assert (
        _titles(api_client.get("/v1/catalog/movies?ordering=year"))[0] == "Old Comedy"
    )
    assert _titles(api_client.get("/v1/catalog/movies?ordering=-year"))[0] == "One Vote"


def test_it_paginates(api_client, catalog):
    body = api_client.get("/v1/catalog/movies?page_size=3&page=2").json()
    assert body["count"] == 4
    assert [m["title"] for m in body["results"]] == ["One Vote"]
    assert body["previous"] is not None and body["next"] is None


def test_bad_filters_get_the_error_shape(api_client, catalog):
    response = api_client.get("/v1/catalog/movies?ordering=loudness&decade=1995")
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "message", "detail"}
    assert "ordering" in body["detail"]

    decade = api_client.get("/v1/catalog/movies?decade=1995")
    assert decade.status_code == 400 and "decade" in decade.json()["detail"]


def test_detail_has_credits_keywords_and_rating_distribution(api_client, user):
    movie = MovieFactory(
        title="Heat", year=1995, keywords=[KeywordFactory(name="heist")]
    )
    CreditFactory(movie=movie, person__name="Michael Mann", role="director")
    CreditFactory(movie=movie, person__name="Al Pacino", order=0)
    CreditFactory(movie=movie, person__name="Robert De Niro", order=1)
    InteractionFactory(movie=movie, value=4.0)
    InteractionFactory(movie=movie, value=4.0)
    InteractionFactory(movie=movie, user=user, value=2.0, idempotency_key="a")
    InteractionFactory(movie=movie, user=user, value=5.0, idempotency_key="b")

    body = api_client.get(f"/v1/catalog/movies/{movie.pk}").json()

    assert body["directors"] == ["Michael Mann"]
    assert body["cast"] == ["Al Pacino", "Robert De Niro"]
    assert body["keywords"] == ["heist"]
    # the user's re-rating replaces the earlier rating
    assert body["rating_distribution"] == {"4": 2, "5": 1}


def test_an_unknown_movie_is_a_404_in_the_error_shape(api_client):
    response = api_client.get("/v1/catalog/movies/999999")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_every_catalog_endpoint_is_in_the_openapi_schema(api_client):
    schema = api_client.get("/v1/schema", HTTP_ACCEPT="application/json").json()
    for path in (
        "/v1/catalog/movies",
        "/v1/catalog/movies/{movie_id}",
        "/v1/search",
        "/v1/search/ai",
    ):
        assert path in schema["paths"], path
    assert "503" in schema["paths"]["/v1/search/ai"]["get"]["responses"]
