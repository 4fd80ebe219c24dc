import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.loaders.movielens import movielens_load
from catalog.models import Credit, Movie, Person
from catalog.tests import datafiles

pytestmark = pytest.mark.django_db


@pytest.fixture
def ml100k(tmp_path):
    movielens_load(
        dataset="ml-100k",
        path=datafiles.write_ml100k(tmp_path / "ml-100k"),
        sources=["path"],
    )


def _tmdb(**files) -> str:
    out = io.StringIO()
    call_command("load_tmdb", stdout=out, **{k: str(v) for k, v in files.items()})
    return out.getvalue()


def _snapshot() -> tuple:
    return (
        sorted(Movie.objects.values_list("id", "tmdb_id", "overview", "runtime")),
        sorted(Credit.objects.values_list("movie_id", "person__name", "role", "order")),
        sorted(Movie.keywords.through.objects.values_list("movie_id", "keyword_id")),
    )


def test_it_matches_by_title_and_year_and_reports_the_rate(ml100k, tmp_path):
    output = _tmdb(movies=datafiles.write_tmdb_movies(tmp_path / "movies.csv"))

    toy = Movie.objects.get(ml100k_id=1)
    assert toy.tmdb_id == 862 and toy.runtime == 90
    assert "toys that come alive" in toy.overview
    assert {k.name for k in toy.keywords.all()} == {"toy", "friendship"}
    # ML-100K genres win over TMDB's
    assert "Family" not in {g.name for g in toy.genres.all()}
    assert Movie.objects.get(ml100k_id=3).tmdb_id == 629  # "Usual Suspects, The"
    assert Movie.objects.get(ml100k_id=2).tmdb_id == 949  # not the 2013 remake
    assert Movie.objects.get(ml100k_id=4).tmdb_id is None
    assert "matched 3 of 4 (75.0%): 0 by TMDB id, 3 by title + year" in output
    assert "catalog: 3 of 4 movies have a TMDB id (75.0%)" in output


def test_links_csv_ids_are_used_before_titles(tmp_path):
    movielens_load(
        dataset="ml-latest-small",
        path=datafiles.write_csv_release(tmp_path / "small"),
        sources=["path"],
    )
    output = _tmdb(movies=datafiles.write_tmdb_movies(tmp_path / "movies.csv"))
    assert "3 by TMDB id, 0 by title + year" in output


def test_credits_add_directors_and_cast_in_billing_order(ml100k, tmp_path):
    _tmdb(
        movies=datafiles.write_tmdb_movies(tmp_path / "movies.csv"),
        credits=datafiles.write_tmdb_credits(tmp_path / "credits.csv"),
    )

    toy = Movie.objects.get(ml100k_id=1)
    cast = toy.credits.filter(role="cast").order_by("order")
    assert [c.person.name for c in cast] == ["Tom Hanks", "Tim Allen", "Don Rickles"]
    assert [c.person.name for c in toy.credits.filter(role="director")] == [
        "John Lasseter"
    ]
    assert "pixar" in {k.name for k in toy.keywords.all()}
    assert not Person.objects.filter(name="Nobody").exists()  # unmatched TMDB id


def test_loading_tmdb_twice_changes_nothing(ml100k, tmp_path):
    files = {
        "movies": datafiles.write_tmdb_movies(tmp_path / "movies.csv"),
        "credits": datafiles.write_tmdb_credits(tmp_path / "credits.csv"),
    }
    _tmdb(**files)
    before = _snapshot()

    output = _tmdb(**files)

    assert _snapshot() == before
    assert "tmdb movies: read 4, loaded 0" in output
    assert "0 new director/cast credits" in output


def test_a_malformed_row_names_file_and_line_and_changes_nothing(ml100k, tmp_path):
    rows = [*datafiles.TMDB_ROWS[:2], {**datafiles.TMDB_ROWS[2], "keywords": "[{oops"}]
    movies = datafiles.write_tmdb_movies(tmp_path / "movies.csv", rows)
    before = _snapshot()

    with pytest.raises(CommandError) as error:
        _tmdb(movies=movies, credits=datafiles.write_tmdb_credits(tmp_path / "c.csv"))

    assert "movies.csv, line 4: keywords is not a JSON array" in str(error.value)
    assert _snapshot() == before


def test_a_bad_credits_file_leaves_the_movies_file_unapplied(ml100k, tmp_path):
    credits = datafiles.write_tmdb_credits(
        tmp_path / "credits.csv", extra_lines=["notanid,X,a,b,c,d"]
    )
    before = _snapshot()

    with pytest.raises(CommandError, match="credits.csv, line 5: id 'notanid'"):
        _tmdb(movies=datafiles.write_tmdb_movies(tmp_path / "m.csv"), credits=credits)

    assert _snapshot() == before


def test_a_file_without_the_id_column_is_refused(ml100k, tmp_path):
    path = tmp_path / "movies.csv"
    path.write_text("title,overview\nToy Story,toys\n")

    with pytest.raises(CommandError, match="header lacks column"):
        _tmdb(movies=path)


def test_skip_malformed_reports_the_row_and_loads_the_rest(ml100k, tmp_path):
    rows = [*datafiles.TMDB_ROWS[:2], {**datafiles.TMDB_ROWS[2], "runtime": "long"}]
    out = io.StringIO()
    call_command(
        "load_tmdb",
        movies=str(datafiles.write_tmdb_movies(tmp_path / "m.csv", rows)),
        skip_malformed=True,
        stdout=out,
    )
    assert Movie.objects.get(ml100k_id=1).tmdb_id == 862
    assert "m.csv, line 4: runtime 'long' is not a number" in out.getvalue()
