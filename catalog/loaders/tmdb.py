"""Import TMDB metadata from CSV files shaped like Kaggle's "TMDB 5000".

Two files: the movies file (``id, title, release_date, overview, genres,
keywords, runtime, vote_average, vote_count, popularity, ...``; list columns are
JSON arrays of ``{"id", "name"}``) and a cast/director file (``id, cast,
director, keywords, genres``; lists are ``|``-separated). TMDB rows are matched
to catalog movies by ``tmdb_id`` (from MovieLens ``links.csv``) or, failing
that, by normalised title + release year. Both files are parsed and checked
before anything is written.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from django.db import transaction

from apex_site.errors import ApplicationError
from catalog import services
from catalog.errors import CatalogErrorCode
from catalog.loaders.report import LoadReport, Progress
from catalog.matching import TitleYearIndex
from catalog.models import Credit, Movie, Person

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
MOVIES_REQUIRED = ("id", "title")
CREDITS_REQUIRED = ("id",)
MAX_CAST = 10


class MalformedRow(Exception):
    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}, line {line}: {reason}")
        self.path, self.line, self.reason = path, line, reason


@dataclass
class TmdbMovie:
    line: int
    tmdb_id: int
    title: str
    original_title: str = ""
    year: int | None = None
    release_date: date | None = None
    overview: str = ""
    tagline: str = ""
    runtime: int | None = None
    original_language: str = ""
    vote_average: float | None = None
    vote_count: int | None = None
    popularity: float | None = None
    genres: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)


@dataclass
class TmdbCredits:
    line: int
    tmdb_id: int
    cast: list[str]
    directors: list[str]
    keywords: list[str]


# ------------------------------------------------------------------- parsing


def _rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """``(first physical line, row)`` for each record; checks the header."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ApplicationError(
            f"{path}: {exc.strerror}", code=CatalogErrorCode.FILE_UNREADABLE
        ) from exc
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames or []
        except (csv.Error, UnicodeDecodeError) as exc:
            raise _file_error(path, 1, f"unreadable header ({exc})") from exc
        missing = [c for c in required if c not in header]
        if missing:
            raise _file_error(path, 1, f"header lacks column(s) {', '.join(missing)}")
        line = reader.line_num + 1
        try:
            for row in reader:
                if None in row or any(v is None for v in row.values()):
                    raise MalformedRow(path, line, "wrong number of fields")
                yield line, row
                line = reader.line_num + 1
        except (csv.Error, UnicodeDecodeError) as exc:
            raise _file_error(path, line, str(exc)) from exc


def _file_error(path: Path, line: int, reason: str) -> ApplicationError:
    return ApplicationError(
        f"{path}, line {line}: {reason}. Nothing was loaded.",
        code=CatalogErrorCode.MALFORMED_FILE,
        detail={"file": str(path), "line": line, "reason": reason},
    )


def _int(value: str, what: str, path: Path, line: int, *, empty_ok: bool = True):
    value = (value or "").strip()
    if not value:
        if empty_ok:
            return None
        raise MalformedRow(path, line, f"{what} is empty")
    try:
        number = float(value)
    except ValueError:
        raise MalformedRow(path, line, f"{what} {value!r} is not a number") from None
    if number != int(number):
        raise MalformedRow(path, line, f"{what} {value!r} is not an integer")
    return int(number)


def _float(value: str, what: str, path: Path, line: int) -> float | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise MalformedRow(path, line, f"{what} {value!r} is not a number") from None


def _names(value: str, what: str, path: Path, line: int) -> list[str]:
    value = (value or "").strip()
    if not value:
        return []
    try:
        items = json.loads(value)
    except json.JSONDecodeError:
        raise MalformedRow(path, line, f"{what} is not a JSON array") from None
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("name"), str) for i in items
    ):
        raise MalformedRow(path, line, f"{what} is not a list of {{name}} objects")
    return [i["name"].strip() for i in items if i["name"].strip()]


def _pipe(value: str) -> list[str]:
    return [v.strip() for v in (value or "").split("|") if v.strip()]


def _date(value: str, path: Path, line: int) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise MalformedRow(
            path, line, f"release_date {value!r} is not YYYY-MM-DD"
        ) from None


def parse_movies_csv(
    path: Path, report: LoadReport, *, skip_malformed: bool
) -> list[TmdbMovie]:
    table = report.table("tmdb movies")
    out: list[TmdbMovie] = []
    seen: set[int] = set()
    for line, row in _checked(path, MOVIES_REQUIRED, table, skip_malformed):
        try:
            tmdb_id = _int(row["id"], "id", path, line, empty_ok=False)
            if tmdb_id in seen:
                table.skip("duplicate TMDB id", f"{path.name}, line {line}")
                continue
            released = _date(row.get("release_date", ""), path, line)
            title = (row.get("title") or row.get("original_title") or "").strip()
            if not title:
                raise MalformedRow(path, line, "title is empty")
            movie = TmdbMovie(
                line=line,
                tmdb_id=tmdb_id,
                title=title,
                original_title=(row.get("original_title") or "").strip(),
                year=released.year if released else None,
                release_date=released,
                overview=(row.get("overview") or "").strip(),
                tagline=(row.get("tagline") or "").strip()[:500],
                runtime=_int(row.get("runtime", ""), "runtime", path, line),
                original_language=(row.get("original_language") or "")[:12],
                vote_average=_float(
                    row.get("vote_average", ""), "vote_average", path, line
                ),
                vote_count=_int(row.get("vote_count", ""), "vote_count", path, line),
                popularity=_float(row.get("popularity", ""), "popularity", path, line),
                genres=_names(row.get("genres", ""), "genres", path, line),
                keywords=_names(row.get("keywords", ""), "keywords", path, line),
            )
        except MalformedRow as exc:
            _malformed(exc, table, skip_malformed)
            continue
        seen.add(tmdb_id)
        out.append(movie)
    return out


def parse_credits_csv(
    path: Path, report: LoadReport, *, skip_malformed: bool
) -> list[TmdbCredits]:
    table = report.table("tmdb credits")
    out: list[TmdbCredits] = []
    seen: set[int] = set()
    for line, row in _checked(path, CREDITS_REQUIRED, table, skip_malformed):
        try:
            tmdb_id = _int(row["id"], "id", path, line, empty_ok=False)
        except MalformedRow as exc:
            _malformed(exc, table, skip_malformed)
            continue
        if tmdb_id in seen:
            table.skip("duplicate TMDB id", f"{path.name}, line {line}")
            continue
        seen.add(tmdb_id)
        out.append(
            TmdbCredits(
                line=line,
                tmdb_id=tmdb_id,
                cast=_pipe(row.get("cast", ""))[:MAX_CAST],
                directors=_pipe(row.get("director", "")),
                keywords=_pipe(row.get("keywords", "")),
            )
        )
    return out


def _checked(path, required, table, skip_malformed) -> Iterator[tuple[int, dict]]:
    rows = _rows(path, required)
    while True:
        try:
            line, row = next(rows)
        except StopIteration:
            return
        except MalformedRow as exc:  # a ragged row: the reader can go on
            _malformed(exc, table, skip_malformed)
            continue
        table.read += 1
        yield line, row


def _malformed(exc: MalformedRow, table, skip_malformed: bool) -> None:
    if not skip_malformed:
        raise ApplicationError(
            f"{exc}. Nothing was loaded; fix the file or pass --skip-malformed.",
            code=CatalogErrorCode.MALFORMED_ROW,
            detail={"file": str(exc.path), "line": exc.line, "reason": exc.reason},
        )
    table.read += 1
    table.skip("malformed row", str(exc))


# ------------------------------------------------------------------- loading


def tmdb_load(
    *,
    movies_csv: str | Path | None = None,
    credits_csv: str | Path | None = None,
    skip_malformed: bool = False,
    batch_size: int = BATCH_SIZE,
) -> LoadReport:
    started = time.monotonic()
    report = LoadReport(name="load_tmdb", source=", ".join(
        str(p) for p in (movies_csv, credits_csv) if p
    ))  # fmt: skip
    if not movies_csv and not credits_csv:
        raise ApplicationError("Give --movies and/or --credits.")
    # Parse everything first: a bad file must leave the database untouched.
    tmdb_movies = (
        parse_movies_csv(Path(movies_csv), report, skip_malformed=skip_malformed)
        if movies_csv
        else []
    )
    credits = (
        parse_credits_csv(Path(credits_csv), report, skip_malformed=skip_malformed)
        if credits_csv
        else []
    )
    touched: set[int] = set()
    if tmdb_movies:
        touched |= _apply_movies(tmdb_movies, report, batch_size)
    if credits:
        touched |= _apply_credits(credits, report, batch_size)
    catalog_total = Movie.objects.count()
    with_tmdb = Movie.objects.filter(tmdb_id__isnull=False).count()
    enriched = Movie.objects.exclude(overview="").count()
    if catalog_total:
        report.notes.append(
            f"catalog: {with_tmdb} of {catalog_total} movies have a TMDB id "
            f"({100 * with_tmdb / catalog_total:.1f}%), {enriched} have an overview "
            f"({100 * enriched / catalog_total:.1f}%)"
        )
    services.movie_search_vectors_refresh(movie_ids=touched)
    report.seconds = time.monotonic() - started
    return report


def _apply_movies(
    rows: list[TmdbMovie], report: LoadReport, batch_size: int
) -> set[int]:
    table = report.table("tmdb movies")
    by_tmdb = dict(
        Movie.objects.filter(tmdb_id__isnull=False).values_list("tmdb_id", "id")
    )
    unlinked = TitleYearIndex.build(
        Movie.objects.filter(tmdb_id__isnull=True).values_list("id", "title", "year")
    )
    matches: list[tuple[TmdbMovie, int]] = []
    claimed: set[int] = set()
    via_id = via_title = 0
    for row in rows:
        pk = by_tmdb.get(row.tmdb_id)
        if pk is not None:
            via_id += 1
        else:
            pk = unlinked.find(row.title, row.year)
            if pk is None and row.original_title and row.original_title != row.title:
                pk = unlinked.find(row.original_title, row.year)
            if pk is None or pk in claimed:
                table.skip("no catalog movie with this TMDB id or title + year")
                continue
            via_title += 1
        claimed.add(pk)
        matches.append((row, pk))
    report.notes.append(
        f"tmdb movies: matched {len(matches)} of {len(rows)} "
        f"({100 * len(matches) / max(len(rows), 1):.1f}%): {via_id} by TMDB id, "
        f"{via_title} by title + year"
    )

    genre_ids = services.genres_ensure(names=(g for r, _ in matches for g in r.genres))
    keyword_ids = services.keywords_ensure(
        names=(k for r, _ in matches for k in r.keywords)
    )
    fields = [
        "tmdb_id", "original_title", "release_date", "overview", "tagline", "runtime",
        "original_language", "vote_average", "vote_count", "tmdb_popularity",
    ]  # fmt: skip
    progress = Progress("tmdb movies", len(matches))
    done = unchanged = 0
    for batch in _chunks(matches, batch_size):
        with transaction.atomic():
            movies = Movie.objects.in_bulk([pk for _, pk in batch])
            has_genres = set(
                Movie.genres.through.objects.filter(movie_id__in=movies).values_list(
                    "movie_id", flat=True
                )
            )
            changed, genre_links, keyword_links = [], [], []
            for row, pk in batch:
                movie = movies[pk]
                before = [getattr(movie, f) for f in fields]
                movie.tmdb_id = row.tmdb_id
                movie.original_title = row.original_title[:300]
                movie.release_date = movie.release_date or row.release_date
                movie.overview = row.overview or movie.overview
                movie.tagline = row.tagline or movie.tagline
                movie.runtime = row.runtime or movie.runtime
                movie.original_language = row.original_language
                movie.vote_average = row.vote_average
                movie.vote_count = row.vote_count
                movie.tmdb_popularity = row.popularity
                if movie.year is None and row.year:
                    movie.year = row.year
                if [getattr(movie, f) for f in fields] != before:
                    changed.append(movie)
                else:
                    unchanged += 1
                # MovieLens genres win; TMDB's only fill movies that have none,
                # so the genre filter does not show "Sci-Fi" and "Science Fiction".
                if pk not in has_genres:
                    genre_links += [(pk, genre_ids[g]) for g in row.genres]
                keyword_links += [(pk, keyword_ids[k[:128]]) for k in row.keywords]
            services.movies_update(movies=changed, fields=[*fields, "year"])
            _link(Movie.genres.through, "genre_id", genre_links)
            _link(Movie.keywords.through, "keyword_id", keyword_links)
        done += len(batch)
        progress.update(done)
    table.loaded = len(matches) - unchanged
    if unchanged:
        table.skip("already up to date", n=unchanged)
    return {pk for _, pk in matches}


def _link(through, column: str, pairs: list[tuple[int, int]]) -> None:
    through.objects.bulk_create(
        [through(movie_id=m, **{column: other}) for m, other in set(pairs)],
        ignore_conflicts=True,
    )


def _apply_credits(
    rows: list[TmdbCredits], report: LoadReport, batch_size: int
) -> set[int]:
    table = report.table("tmdb credits")
    by_tmdb = dict(
        Movie.objects.filter(tmdb_id__in=[r.tmdb_id for r in rows]).values_list(
            "tmdb_id", "id"
        )
    )
    matched = [(r, by_tmdb[r.tmdb_id]) for r in rows if r.tmdb_id in by_tmdb]
    table.skip("no catalog movie with this TMDB id", n=len(rows) - len(matched))
    report.notes.append(
        f"tmdb credits: matched {len(matched)} of {len(rows)} rows by TMDB id "
        f"({100 * len(matched) / max(len(rows), 1):.1f}%)"
    )
    names = {n[:200] for r, _ in matched for n in [*r.cast, *r.directors]}
    people = _people_ensure(names)
    keyword_ids = services.keywords_ensure(
        names=(k for r, _ in matched for k in r.keywords)
    )
    existing = set(
        Credit.objects.filter(movie_id__in=[pk for _, pk in matched]).values_list(
            "movie_id", "person_id", "role"
        )
    )
    progress = Progress("tmdb credits", len(matched))
    done = new_credits = rows_with_new = 0
    for batch in _chunks(matched, batch_size):
        credits: list[Credit] = []
        keyword_links: list[tuple[int, int]] = []
        for row, pk in batch:
            before = len(credits)
            for role, names_ in ((Credit.Role.DIRECTOR, row.directors),
                                 (Credit.Role.CAST, row.cast)):  # fmt: skip
                for order, name in enumerate(names_):
                    person = people[name[:200]]
                    if (pk, person, role) in existing:
                        continue
                    existing.add((pk, person, role))
                    credits.append(
                        Credit(movie_id=pk, person_id=person, role=role, order=order)
                    )
            keyword_links += [(pk, keyword_ids[k[:128]]) for k in row.keywords]
            rows_with_new += len(credits) > before
        with transaction.atomic():
            Credit.objects.bulk_create(credits, ignore_conflicts=True)
            _link(Movie.keywords.through, "keyword_id", keyword_links)
        new_credits += len(credits)
        done += len(batch)
        progress.update(done)
    table.loaded = rows_with_new
    if len(matched) > rows_with_new:
        table.skip("already up to date", n=len(matched) - rows_with_new)
    report.notes.append(f"tmdb credits: {new_credits} new director/cast credits")
    return {pk for _, pk in matched}


def _people_ensure(names: set[str]) -> dict[str, int]:
    """Person ids by name; namesakes share the lowest id (the CSV has no ids)."""
    found: dict[str, int] = {}
    ordered = sorted(names)
    for chunk in _chunks(ordered, 2000):
        for name, pk in (
            Person.objects.filter(name__in=chunk)
            .order_by("-id")
            .values_list("name", "id")
        ):
            found[name] = pk
    missing = [Person(name=n) for n in ordered if n not in found]
    for chunk in _chunks(missing, 2000):
        with transaction.atomic():
            for person in Person.objects.bulk_create(chunk):
                found[person.name] = person.pk
    return found


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
