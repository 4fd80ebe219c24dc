"""A subscriber's home feed redraws live, in a real Chromium: rating a movie
in one tab updates the "For you" row of the home page open in another, with
a note of what caused it (the production shape: nginx, gunicorn, uvicorn
for the websocket; a real worker, Redis)."""

from __future__ import annotations

import pytest

from accounts.tests.factories import UserFactory
from catalog.tests.factories import GenreFactory, MovieFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_rating_in_one_tab_updates_the_home_feed_in_another(
    browser_page, production_server
):
    user = UserFactory(email="ann@example.com")
    user.set_password("a long and happy passphrase")
    user.save()
    western = GenreFactory(name="Western")
    rated, *others = [
        MovieFactory(title=f"Western {i}", rating_count=90 - i, genres=[western])
        for i in range(4)
    ]
    MovieFactory(title="Unrelated", rating_count=1)
    base = f"http://{production_server}"

    home = browser_page
    home.goto(f"{base}/accounts/login/")
    home.get_by_label("Email").fill("ann@example.com")
    home.get_by_label("Password").fill("a long and happy passphrase")
    home.get_by_role("button", name="Log in").click()
    home.goto(f"{base}/")
    home.wait_for_selector('[data-testid="feed"][data-live-state="open"]')
    assert home.get_by_test_id("live-note").is_hidden()

    other = home.context.new_page()
    other.goto(f"{base}/catalog/movies/{rated.pk}/")
    other.get_by_label("Your rating").select_option("4.5")
    other.get_by_role("button", name="Rate").click()

    home.wait_for_selector('[data-testid="feed"][data-updates="1"]', timeout=30_000)
    note = home.get_by_test_id("live-note")
    assert note.inner_text() == f"Updated after you rated {rated.title}"
    row = home.locator('[data-row="for_you"]')
    ids = row.locator(".movie-card").evaluate_all(
        "cards => cards.map(c => Number(c.dataset.movieId))"
    )
    assert rated.pk not in ids
    assert set(ids[:3]) == {m.pk for m in others}  # the rated one's genre first
    assert "updated" in row.get_attribute("class")
