import pytest
from django.test import Client

from catalog.tests.factories import CreditFactory, GenreFactory, MovieFactory
from learning.models import Interaction
from learning.tests.factories import InteractionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def heat():
    crime = GenreFactory(name="Crime")
    movie = MovieFactory(
        title="Heat",
        year=1995,
        runtime=170,
        overview="A detective hunts a crew of bank robbers.",
        genres=[crime],
    )
    CreditFactory(movie=movie, person__name="Michael Mann", role="director")
    CreditFactory(movie=movie, person__name="Al Pacino", order=0)
    InteractionFactory(movie=movie, value=5.0)
    InteractionFactory(movie=movie, value=3.0)
    return movie


def test_browse_lists_filters_and_paginates(client):
    comedy, drama = GenreFactory(name="Comedy"), GenreFactory(name="Drama")
    for n in range(30):
        MovieFactory(title=f"Comedy {n:02}", year=1990 + n % 10, genres=[comedy])
    MovieFactory(title="A Seventies Drama", year=1975, genres=[drama])

    page = client.get("/catalog/?ordering=title")
    html = page.content.decode()
    assert page.status_code == 200
    assert "A Seventies Drama" in html and "Page 1 of 2" in html
    assert "ordering=title&amp;page=2" in html

    filtered = client.get("/catalog/?genre=drama&decade=1970").content.decode()
    assert "A Seventies Drama" in filtered and "Comedy 00" not in filtered
    assert '<option value="1970" selected>1970s</option>' in filtered


def test_movie_page_shows_details_credits_and_distribution(client, heat):
    html = client.get(f"/catalog/movies/{heat.pk}/").content.decode()
    assert "A detective hunts a crew of bank robbers." in html
    assert "170 min" in html and "Michael Mann" in html and "Al Pacino" in html
    assert f"/catalog/movies/{heat.pk}/poster.svg" in html
    assert "5 ★" in html and "3 ★" in html
    assert "Log in</a> to rate this movie" in html


def test_rating_from_the_movie_page_writes_one_interaction(client, user, heat):
    client.force_login(user)
    form = {"stars": "4.5", "idempotency_key": "form-1"}

    response = client.post(f"/catalog/movies/{heat.pk}/rate/", form, follow=True)
    client.post(f"/catalog/movies/{heat.pk}/rate/", form)  # double submit

    rows = Interaction.objects.filter(user=user, movie=heat)
    assert [(r.kind, r.value, r.source) for r in rows] == [("rating", 4.5, "web")]
    assert 'data-testid="my-rating">4.5 ★' in response.content.decode()
    heat.refresh_from_db()
    assert heat.rating_count == 3 and heat.rating_mean == pytest.approx(12.5 / 3, 1e-3)


def test_an_invalid_rating_is_refused(client, user, heat):
    client.force_login(user)
    response = client.post(
        f"/catalog/movies/{heat.pk}/rate/",
        {"stars": "11", "idempotency_key": "k"},
        follow=True,
    )
    assert "Pick a rating" in response.content.decode()
    assert not Interaction.objects.filter(user=user).exists()


def test_rating_needs_a_login(client, heat):
    response = client.post(f"/catalog/movies/{heat.pk}/rate/", {"stars": "4"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert Interaction.objects.filter(movie=heat).count() == 2  # the fixture's two


def test_the_watchlist_toggle_swaps_the_button_in_place(client, user, heat):
    client.force_login(user)
    url = f"/catalog/movies/{heat.pk}/watchlist/"

    added = client.post(
        url, {"on": "True", "idempotency_key": "w1"}, HTTP_HX_REQUEST="true"
    )
    assert "On your watchlist" in added.content.decode()
    assert "<html" not in added.content.decode()  # a fragment for htmx

    removed = client.post(url, {"on": "", "idempotency_key": "w2"}, follow=True)
    assert "Add to watchlist" in removed.content.decode()
    assert list(
        Interaction.objects.filter(user=user, kind="watchlist")
        .order_by("id")
        .values_list("value", flat=True)
    ) == [1.0, 0.0]


def test_the_poster_placeholder_is_an_svg_with_the_escaped_title(client):
    movie = MovieFactory(title="Tom & Jerry <The Movie>", year=1992)
    response = client.get(f"/catalog/movies/{movie.pk}/poster.svg")
    assert response["Content-Type"] == "image/svg+xml"
    svg = response.content.decode()
    assert svg.startswith("<svg") and "Tom &amp; Jerry &lt;The" in svg
    assert "<The" not in svg


def test_search_page_and_the_htmx_results_fragment(client, heat):
    from catalog import services

    services.movie_search_vectors_refresh()
    page = client.get("/search/?q=hea&mode=keyword").content.decode()
    assert 'hx-get="/search/results/"' in page and "Heat" in page
    assert "js/htmx.min.js" in page

    fragment = client.get("/search/results/?q=robbers&mode=keyword").content.decode()
    assert fragment.lstrip().startswith('<div id="search-results"')
    assert f"/catalog/movies/{heat.pk}/" in fragment

    none = client.get("/search/results/?q=zzzz&mode=keyword").content.decode()
    assert "No movies found." in none


def test_semantic_mode_without_an_index_explains_itself(client, settings, tmp_path):
    settings.APEX_SEARCH_INDEX_DIR = tmp_path / "none"
    html = Client().get("/search/results/?q=robots&mode=semantic").content.decode()
    assert "has not been built" in html
