"""Input files: which files make up a source, their format, and Spark readers.

The format knowledge (file names, separators, encodings, column order, the
19 ML-100K genre flags) is the engine's, from
``recommendations.engine.data.movielens``, the project's MovieLens parser;
here it is only turned into options for Spark's own CSV / Parquet readers.

Before any table is written every file of a batch is checked
(:func:`preflight`): a wrong delimiter or a missing column stops the run with
:class:`InputFileError` naming the file and the column, so the Delta tables
stay as they were. Rows that are malformed further down a file are not a
file-level problem: Spark puts them in ``_corrupt_record`` and silver
quarantines them.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from etl.contracts import CORRUPT_COLUMN
from recommendations.engine.data.movielens import ML100K_GENRES

logger = logging.getLogger(__name__)

GENRE_FLAG_COLUMNS = tuple(f"genre_flag_{i:02d}" for i in range(len(ML100K_GENRES)))
"""u.item's genre flags, in ``ML100K_GENRES`` order (names Delta accepts)."""

EVENT_COLUMNS = {
    "event_id": "bigint",
    "user_id": "bigint",
    "movielens_user_id": "bigint",
    "movie_id": "bigint",
    "movielens_id": "bigint",
    "tmdb_id": "bigint",
    "kind": "string",
    "value": "double",
    "occurred_at": "timestamp",
    "source": "string",
    "idempotency_key": "string",
}
"""Columns of ``manage.py export_events`` Parquet files (the catalog contract)."""


class InputFileError(ValueError):
    """A whole input file has the wrong shape; nothing was written."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class FileSpec:
    """One delimited input file and the bronze table it lands in.

    ``columns`` are the bronze column names in file order. For files with a
    header, ``header_names`` are the names the file must contain.
    """

    table: str
    filename: str
    sep: str
    columns: tuple[str, ...]
    encoding: str = "UTF-8"
    header_names: tuple[str, ...] | None = None
    required: bool = True
    multiline: bool = False

    @property
    def header(self) -> bool:
        return self.header_names is not None


_LATIN1 = "ISO-8859-1"

LAYOUTS: dict[str, tuple[FileSpec, ...]] = {
    "ml-100k": (
        FileSpec("ml_ratings", "u.data", "\t", ("user_id", "item_id", "rating",
                 "timestamp")),
        FileSpec("ml_movies", "u.item", "|", ("item_id", "raw_title", "release_date",
                 "video_release_date", "imdb_url", *GENRE_FLAG_COLUMNS),
                 encoding=_LATIN1),
        FileSpec("ml_users", "u.user", "|", ("user_id", "age", "gender",
                 "occupation", "zip"), required=False),
    ),
    "ml-1m": (
        FileSpec("ml_ratings", "ratings.dat", "::", ("user_id", "item_id", "rating",
                 "timestamp"), encoding=_LATIN1),
        FileSpec("ml_movies", "movies.dat", "::", ("item_id", "raw_title", "genres"),
                 encoding=_LATIN1),
        FileSpec("ml_users", "users.dat", "::", ("user_id", "gender", "age",
                 "occupation_code", "zip"), encoding=_LATIN1, required=False),
    ),
    "csv": (
        FileSpec("ml_ratings", "ratings.csv", ",", ("user_id", "item_id", "rating",
                 "timestamp"), header_names=("userId", "movieId", "rating",
                 "timestamp")),
        FileSpec("ml_movies", "movies.csv", ",", ("item_id", "raw_title", "genres"),
                 header_names=("movieId", "title", "genres")),
        FileSpec("ml_links", "links.csv", ",", ("item_id", "imdb_id", "tmdb_id"),
                 header_names=("movieId", "imdbId", "tmdbId"), required=False),
        FileSpec("ml_tags", "tags.csv", ",", ("user_id", "item_id", "tag",
                 "timestamp"), header_names=("userId", "movieId", "tag",
                 "timestamp"), required=False),
    ),
    "tmdb": (
        FileSpec("tmdb_movies", "tmdb_5000_movies.csv", ",", ("tmdb_id", "title",
                 "release_date", "overview", "popularity", "vote_average",
                 "vote_count", "genres", "keywords"),
                 header_names=("id", "title", "release_date", "overview",
                 "popularity", "vote_average", "vote_count", "genres", "keywords"),
                 required=False, multiline=True),
        FileSpec("tmdb_people", "tmdb_10866_cast_director.csv", ",", ("tmdb_id",
                 "original_title", "cast", "director", "keywords", "genres"),
                 header_names=("id", "original_title", "cast", "director",
                 "keywords", "genres"), required=False, multiline=True),
    ),
}  # fmt: skip


def detect_layout(folder: Path) -> str:
    """MovieLens layout of ``folder`` by the engine's rule, or ``tmdb``."""
    from recommendations.engine.data.movielens import detect_layout as ml_layout
    from recommendations.engine.errors import DataError

    try:
        return ml_layout(folder)
    except DataError:
        if any((folder / s.filename).is_file() for s in LAYOUTS["tmdb"]):
            return "tmdb"
        raise InputFileError(
            str(folder),
            "no MovieLens files (u.data, ratings.dat, ratings.csv) or TMDB files",
        ) from None


@dataclass(frozen=True)
class InputFile:
    spec: FileSpec
    path: str
    dataset: str
    layout: str


def files_of(folder: Path) -> list[InputFile]:
    """The input files a folder holds (a missing required file is an error)."""
    layout = detect_layout(folder)
    dataset = folder.name if layout in ("csv", "tmdb") else layout
    found = []
    for spec in LAYOUTS[layout]:
        path = folder / spec.filename
        if path.is_file():
            found.append(InputFile(spec, str(path), dataset, layout))
        elif spec.required:
            raise InputFileError(str(path), f"required {layout} file is missing")
    return found


def file_identity(path: str) -> str:
    """Content hash of a local file (so a renamed copy is still a re-ingest).

    Remote paths (``s3a://``, ``hdfs://``) are identified by their URL: hashing
    them would mean downloading them twice.
    """
    parsed = urlparse(path)
    if parsed.scheme not in ("", "file"):
        return f"url:{path}"
    digest = hashlib.sha256()
    with open(parsed.path or path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


# ------------------------------------------------------------------ preflight


def _first_line(spark: SparkSession, path: str) -> str:
    parsed = urlparse(path)
    if parsed.scheme in ("", "file"):
        # A local file needs no Spark job for one line; Latin-1 maps every byte,
        # and only ASCII separators are counted.
        with open(parsed.path or path, "rb") as fh:
            raw = fh.readline()
        if not raw:
            raise InputFileError(path, "file is empty")
        line = raw.decode("latin-1")
    else:
        rows = spark.read.text(path).limit(1).collect()
        if not rows:
            raise InputFileError(path, "file is empty")
        line = rows[0][0]
    # A UTF-8 byte-order mark shows up as these three Latin-1 characters.
    return line.removeprefix("\xef\xbb\xbf").removeprefix("\ufeff").rstrip("\r\n")


def preflight(spark: SparkSession, item: InputFile) -> tuple[str, ...]:
    """Check a delimited file's shape; return its header names (or columns)."""
    spec = item.spec
    line = _first_line(spark, item.path)
    sep_name = repr(spec.sep)
    if spec.header_names is not None:
        names = tuple(next(csv.reader([line], delimiter=spec.sep)))
        missing = [n for n in spec.header_names if n not in names]
        if missing:
            hint = (
                f" (the header has 1 field: is the delimiter {sep_name}?)"
                if len(names) == 1
                else ""
            )
            raise InputFileError(
                item.path, f"missing column {missing[0]!r} in header {names}{hint}"
            )
        return names
    fields = line.split(spec.sep)
    n = len(spec.columns)
    if len(fields) < n:
        raise InputFileError(
            item.path,
            f"line 1 has {len(fields)} field(s) separated by {sep_name}, expected "
            f"{n}: missing column {spec.columns[len(fields)]!r}"
            + (" (wrong delimiter?)" if len(fields) == 1 else ""),
        )
    if len(fields) > n:
        raise InputFileError(
            item.path,
            f"line 1 has {len(fields)} fields separated by {sep_name}, expected "
            f"{n} ({', '.join(spec.columns)})",
        )
    return spec.columns


# -------------------------------------------------------------------- readers


def read_delimited(
    spark: SparkSession, item: InputFile, header: tuple[str, ...]
) -> DataFrame:
    """Read one file with Spark's CSV reader: all columns as strings.

    Columns are read positionally under the file's own header names (so a
    release with extra columns still works), then renamed to the bronze names;
    a row with the wrong number of fields keeps its raw line in
    ``_corrupt_record``.
    """
    spec = item.spec
    file_names = header if spec.header else spec.columns
    # Fields are named like the header because Spark warns when they differ;
    # a header that repeats a name gets position suffixes instead.
    fields = list(file_names)
    if len(set(fields)) != len(fields):
        fields = [f"{name}__{i}" for i, name in enumerate(file_names)]
    schema = StructType(
        [StructField(name, StringType()) for name in fields]
        + [StructField(CORRUPT_COLUMN, StringType())]
    )
    reader = (
        spark.read.schema(schema)
        .option("sep", spec.sep)
        .option("encoding", spec.encoding)
        .option("header", str(spec.header).lower())
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_COLUMN)
    )
    if spec.sep == ",":
        reader = reader.option("quote", '"').option("escape", '"')
    else:
        # MovieLens text layouts have no quoting: a title may start with '"'.
        reader = reader.option("quote", "\u0000")
    if spec.multiline:
        reader = reader.option("multiLine", "true")
    frame = reader.csv(item.path)
    if spec.header_names is not None:
        positions = {name: i for i, name in enumerate(file_names)}
        wanted = [
            F.col(f"`{fields[positions[src]]}`").alias(dst)
            for src, dst in zip(spec.header_names, spec.columns, strict=True)
        ]
    else:
        wanted = [
            F.col(f"`{f}`").alias(name)
            for f, name in zip(fields, spec.columns, strict=True)
        ]
    return frame.select(*wanted, F.col(CORRUPT_COLUMN))


def read_events(spark: SparkSession, path: str) -> DataFrame:
    """Read one ``export_events`` Parquet file and check its columns."""
    try:
        frame = spark.read.parquet(path)
    except Exception as exc:  # Spark raises AnalysisException subclasses
        raise InputFileError(path, f"not a readable Parquet file: {exc}") from exc
    types = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
    for name, expected in EVENT_COLUMNS.items():
        if name not in types:
            raise InputFileError(path, f"missing column {name!r}")
        actual = types[name]
        compatible = (
            actual == expected
            or (expected == "bigint" and actual in ("int", "smallint", "tinyint"))
            or (expected == "timestamp" and actual.startswith("timestamp"))
        )
        if not compatible:
            raise InputFileError(
                path, f"column {name!r} has type {actual}, expected {expected}"
            )
    return frame.select(*[F.col(n).cast(t).alias(n) for n, t in EVENT_COLUMNS.items()])
