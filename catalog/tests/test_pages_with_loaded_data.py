"""The pages over data that went through the real loaders (not factories)."""

import pytest

from catalog.loaders.movielens import movielens_load
from catalog.loaders.tmdb import tmdb_load
from catalog.models import Movie
from catalog.tests import datafiles

pytestmark = pytest.mark.django_db


@pytest.fixture
def loaded(tmp_path):
    movielens_load(
        dataset="ml-100k",
        path=datafiles.write_ml100k(tmp_path / "ml-100k"),
        sources=["path"],
    )
    tmdb_load(
        movies_csv=datafiles.write_tmdb_movies(tmp_path / "movies.csv"),
        credits_csv=datafiles.write_tmdb_credits(tmp_path / "credits.csv"),
    )


def test_browse_detail_and_search_render_the_loaded_catalog(client, loaded):
    toy = Movie.objects.get(ml100k_id=1)

    browse = client.get("/catalog/?genre=animation").content.decode()
    assert "Toy Story" in browse and "Heat" not in browse

    detail = client.get(f"/catalog/movies/{toy.pk}/").content.decode()
    assert "toys that come alive" in detail
    assert "John Lasseter" in detail and "Tom Hanks, Tim Allen, Don Rickles" in detail
    assert "90 min" in detail and "pixar" in detail
    assert "3.7 ★ from 3 ratings" in detail

    results = client.get("/search/results/?q=lasseter&mode=keyword").content.decode()
    assert f"/catalog/movies/{toy.pk}/" in results


def test_admin_lists_movies_and_interactions(client, loaded, django_user_model):
    admin = django_user_model.objects.create_superuser(
        email="admin@example.com", password="x"
    )
    client.force_login(admin)
    for url in (
        "/admin/catalog/movie/",
        f"/admin/catalog/movie/{Movie.objects.get(ml100k_id=1).pk}/change/",
        "/admin/learning/interaction/",
        "/admin/catalog/person/",
    ):
        assert client.get(url).status_code == 200, url
