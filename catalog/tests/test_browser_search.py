"""Search as you type and the watchlist toggle, in a real Chromium (htmx)."""

import pytest

from accounts.tests.factories import PASSWORD, UserFactory
from catalog import services
from catalog.tests.factories import GenreFactory, MovieFactory
from learning.models import Interaction

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(browser_page):
    return browser_page


def test_results_appear_while_typing_without_a_page_load(page, live_server):
    scifi = GenreFactory(name="Sci-Fi")
    MovieFactory(title="Star Wars", year=1977, genres=[scifi], rating_count=10)
    MovieFactory(title="Stargate", year=1994, genres=[scifi])
    MovieFactory(title="Heat", year=1995)
    services.movie_search_vectors_refresh()

    page.goto(f"{live_server.url}/search/")
    page.evaluate("window.__sameDocument = true")
    page.get_by_role("searchbox").press_sequentially("star w", delay=30)

    results = page.locator("#search-results li")
    results.first.wait_for()
    assert results.all_inner_texts()[0].startswith("Star Wars")
    assert page.locator("#search-results").get_by_text("Heat").count() == 0
    assert page.evaluate("window.__sameDocument") is True  # htmx swapped, no reload


def test_the_watchlist_button_toggles_in_place(page, live_server):
    user = UserFactory()
    movie = MovieFactory(title="Heat", year=1995)
    page.goto(f"{live_server.url}/accounts/login/?next=/catalog/movies/{movie.pk}/")
    page.get_by_label("Email address").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**/catalog/movies/{movie.pk}/")
    page.evaluate("window.__sameDocument = true")

    page.get_by_role("button", name="+ Add to watchlist").click()
    page.get_by_role("button", name="✓ On your watchlist").wait_for()
    page.get_by_role("button", name="✓ On your watchlist").click()
    page.get_by_role("button", name="+ Add to watchlist").wait_for()

    assert page.evaluate("window.__sameDocument") is True
    values = Interaction.objects.filter(user=user, kind="watchlist").order_by("id")
    assert list(values.values_list("value", flat=True)) == [1.0, 0.0]
