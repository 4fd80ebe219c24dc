import pytest
from django.core.management import call_command

from catalog import selectors, services
from catalog.tests.factories import (
    CreditFactory,
    GenreFactory,
    KeywordFactory,
    MovieFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def indexed():
    scifi = GenreFactory(name="Sci-Fi")
    movies = {
        "star_wars": MovieFactory(
            title="Star Wars", year=1977, genres=[scifi], rating_count=500,
            overview="Luke Skywalker joins the rebellion.",
        ),
        "stargate": MovieFactory(
            title="Stargate", year=1994, genres=[scifi], rating_count=80,
            overview="An ancient ring leads to another planet.",
        ),
        "heat": MovieFactory(
            title="Heat", year=1995, rating_count=300,
            overview="A detective hunts a crew of star bank robbers.",
            keywords=[KeywordFactory(name="heist")],
        ),
        "toy_story": MovieFactory(title="Toy Story", year=1995, rating_count=450),
    }  # fmt: skip
    CreditFactory(movie=movies["heat"], person__name="Michael Mann", role="director")
    services.movie_search_vectors_refresh()
    return movies


def _search(api_client, q: str) -> list[str]:
    response = api_client.get("/v1/search", {"q": q})
    assert response.status_code == 200, response.json()
    assert response.json()["mode"] == "keyword"
    return [hit["movie"]["title"] for hit in response.json()["results"]]


def test_title_matches_outrank_plot_mentions(api_client, indexed):
    assert _search(api_client, "star") == ["Star Wars", "Stargate", "Heat"]


def test_word_beginnings_match_while_typing(api_client, indexed):
    assert _search(api_client, "star wa") == ["Star Wars"]
    assert _search(api_client, "toy sto") == ["Toy Story"]


def test_it_finds_people_keywords_and_stemmed_plot_words(api_client, indexed):
    assert _search(api_client, "mann") == ["Heat"]
    assert _search(api_client, "heists") == ["Heat"]
    assert _search(api_client, "robber") == ["Heat"]


def test_queries_cannot_inject_tsquery_syntax(api_client, indexed):
    assert _search(api_client, "star & | ! ( :*") == ["Star Wars", "Stargate", "Heat"]
    assert _search(api_client, "zzzz") == []


def test_an_empty_query_is_a_400(api_client):
    response = api_client.get("/v1/search", {"q": "  "})
    assert response.status_code == 400
    assert "q" in response.json()["detail"]


def test_the_fallback_without_postgres_ranks_title_hits_first(indexed):
    hits = selectors._search_fallback(["star"], "star", 10)
    assert [h.movie.title for h in hits] == ["Star Wars", "Stargate", "Heat"]
    # a fragment still being typed only matches titles
    typing = selectors._search_fallback(["sta"], "sta", 10)
    assert [h.movie.title for h in typing] == ["Star Wars", "Stargate"]
    plot = selectors._search_fallback(["robbers"], "robbers", 10)
    assert [h.movie.title for h in plot] == ["Heat"]


def test_semantic_search_without_an_index_answers_503(api_client, settings, tmp_path):
    settings.APEX_SEARCH_INDEX_DIR = tmp_path / "nothing-here"
    response = api_client.get("/v1/search/ai", {"q": "robots in space"})
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "search_index_unavailable"
    assert "build_search_index" in body["message"]


SEMANTIC_CATALOG = [
    ("WALL-E", 2008, ["Animation", "Sci-Fi"], "A lonely robot left to clean up an "
     "abandoned Earth follows a sleek probe robot across the galaxy aboard a "
     "spaceship."),
    ("Toy Story", 1995, ["Animation", "Children's"], "A cowboy doll is threatened "
     "when a new spaceman action figure becomes the boy's favourite toy."),
    ("The Godfather", 1972, ["Crime", "Drama"], "The aging patriarch of an organized "
     "crime dynasty transfers control to his reluctant son."),
    ("Titanic", 1997, ["Romance", "Drama"], "A young aristocrat falls in love with a "
     "poor artist aboard the ill-fated ship."),
    ("Heat", 1995, ["Crime", "Thriller"], "A detective hunts a crew of bank robbers "
     "in Los Angeles."),
    ("Jaws", 1975, ["Horror", "Thriller"], "A great white shark terrorises a beach "
     "town."),
    ("Sense and Sensibility", 1995, ["Romance", "Drama"], "Two sisters of opposite "
     "temperament seek love and marriage in Georgian England."),
    ("Fargo", 1996, ["Crime", "Comedy"], "A car salesman hires two criminals to "
     "kidnap his wife; a pregnant police chief investigates."),
    ("Babe", 1995, ["Children's", "Comedy"], "A pig raised by sheepdogs learns to "
     "herd sheep."),
    ("Apollo 13", 1995, ["Drama"], "Astronauts struggle home after an explosion "
     "damages their spacecraft."),
    ("Casablanca", 1942, ["Romance", "War"], "A nightclub owner meets his former "
     "lover in wartime Morocco."),
    ("Scream", 1996, ["Horror"], "A masked killer stalks teenagers in a small town."),
]  # fmt: skip


@pytest.mark.slow
def test_semantic_search_understands_plain_language(api_client, settings, tmp_path):
    settings.APEX_SEARCH_INDEX_DIR = tmp_path / "search"
    for title, year, genres, overview in SEMANTIC_CATALOG:
        MovieFactory(
            title=title,
            year=year,
            overview=overview,
            genres=[GenreFactory(name=g) for g in genres],
        )
    call_command("build_search_index")

    def top(q: str, k: int) -> list[str]:
        response = api_client.get("/v1/search/ai", {"q": q, "limit": k})
        assert response.status_code == 200, response.json()
        assert response.json()["mode"] == "semantic"
        return [hit["movie"]["title"] for hit in response.json()["results"]]

    assert top("space adventure with robots", 2)[0] == "WALL-E"
    assert "Toy Story" in top("animated movie about toys", 2)
    assert top("mafia family crime saga", 1) == ["The Godfather"]
    assert top("romance on a sinking ship", 1) == ["Titanic"]

    # A rebuilt index is picked up by the running process, no restart needed.
    MovieFactory(
        title="Finding Nemo",
        year=2003,
        overview="A clownfish father crosses the ocean to find his lost son.",
    )
    call_command("build_search_index")
    assert top("a lost clownfish in the ocean", 1) == ["Finding Nemo"]
