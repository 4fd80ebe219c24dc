import io
import json

import pytest
from django.core.management import call_command

from apex_site.errors import ApplicationError
from catalog.loaders.tmdb_api import TmdbClient, tmdb_enrich
from catalog.models import Credit, Movie
from catalog.tests.factories import MovieFactory

pytestmark = pytest.mark.django_db

DETAILS = {
    "id": 862,
    "poster_path": "/toy.jpg",
    "overview": "Toys come alive.",
    "runtime": 81,
    "vote_average": 7.9,
    "vote_count": 17000,
    "popularity": 99.5,
    "original_title": "Toy Story",
    "belongs_to_collection": {"id": 10194, "name": "Toy Story Collection"},
    "genres": [{"id": 16, "name": "Animation"}],
    "keywords": {"keywords": [{"id": 1, "name": "toy"}]},
    "videos": {"results": [{"site": "YouTube", "type": "Trailer", "key": "abc"}]},
    "credits": {
        "cast": [{"id": 31, "name": "Tom Hanks", "character": "Woody", "order": 0}],
        "crew": [{"id": 7879, "name": "John Lasseter", "job": "Director"}],
    },
}


class FakeTmdb:
    """The HTTP boundary: answers scripted per call, records every URL."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.urls: list[str] = []

    def __call__(self, url, headers, timeout):
        self.urls.append(url)
        status, body, headers_ = self.answers.pop(0)
        return status, headers_, json.dumps(body).encode()


def _client(tmp_path, transport, sleeps):
    return TmdbClient(
        "k3y",
        cache_dir=tmp_path / "cache",
        requests_per_second=1000,
        transport=transport,
        sleep=sleeps.append,
    )


def test_it_fills_poster_credits_collection_and_trailer(tmp_path):
    movie = MovieFactory(title="Toy Story", tmdb_id=862)
    fake = FakeTmdb((200, DETAILS, {}))

    report = tmdb_enrich(client=_client(tmp_path, fake, []))

    movie.refresh_from_db()
    assert (movie.poster_path, movie.runtime, movie.trailer_key) == (
        "/toy.jpg",
        81,
        "abc",
    )
    assert movie.collection.name == "Toy Story Collection"
    assert {g.name for g in movie.genres.all()} == {"Animation"}
    director = Credit.objects.get(movie=movie, role="director")
    assert (director.person.name, director.person.tmdb_id) == ("John Lasseter", 7879)
    assert Credit.objects.get(movie=movie, role="cast").character == "Woody"
    assert report.tables["movies"].loaded == 1
    assert "/movie/862?" in fake.urls[0] and "api_key=k3y" in fake.urls[0]


def test_rate_limits_and_server_errors_are_retried_with_back_off(tmp_path):
    MovieFactory(title="Toy Story", tmdb_id=862)
    fake = FakeTmdb(
        (429, {}, {"Retry-After": "7"}),
        (503, {}, {}),
        (200, DETAILS, {}),
    )
    sleeps: list[float] = []

    tmdb_enrich(client=_client(tmp_path, fake, sleeps))

    assert len(fake.urls) == 3
    back_off = [s for s in sleeps if s >= 1]
    assert back_off == [7.0, 2.0]  # Retry-After honoured, then 2**1 seconds
    assert Movie.objects.get(tmdb_id=862).poster_path == "/toy.jpg"


def test_responses_are_cached_so_a_rerun_makes_no_requests(tmp_path):
    MovieFactory(title="Toy Story", tmdb_id=862)
    tmdb_enrich(client=_client(tmp_path, FakeTmdb((200, DETAILS, {})), []))
    Movie.objects.update(poster_path="")
    silent = FakeTmdb()  # any request would fail: no answers scripted

    report = tmdb_enrich(client=_client(tmp_path, silent, []))

    assert silent.urls == []
    assert report.tables["movies"].loaded == 1


def test_a_movie_without_tmdb_id_is_found_by_title_and_year(tmp_path):
    movie = MovieFactory(title="Toy Story", year=1995)
    fake = FakeTmdb(
        (200, {"results": [{"id": 862, "title": "Toy Story"}]}, {}),
        (200, DETAILS, {}),
    )

    tmdb_enrich(client=_client(tmp_path, fake, []))

    movie.refresh_from_db()
    assert movie.tmdb_id == 862
    assert "/search/movie?" in fake.urls[0] and "year=1995" in fake.urls[0]


def test_it_gives_up_after_the_retries_with_a_clear_error(tmp_path):
    MovieFactory(tmdb_id=1)
    fake = FakeTmdb(*[(500, {}, {})] * 6)
    with pytest.raises(ApplicationError, match="did not answer /movie/1 after 6"):
        tmdb_enrich(client=_client(tmp_path, fake, []))


def test_without_a_key_the_command_says_so_and_exits_cleanly(settings):
    settings.TMDB_API_KEY = ""
    movie = MovieFactory()
    out = io.StringIO()

    call_command("enrich_tmdb", stdout=out)

    assert "TMDB_API_KEY is not set" in out.getvalue()
    movie.refresh_from_db()
    assert movie.poster_path == ""
