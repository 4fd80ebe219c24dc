"""Load a MovieLens release into movies, accounts and the interaction log.

Parsing is done by ``recommendations.engine.data.movielens`` (one parser for
the web app, the engine and the benchmarks). The whole release is parsed and
validated before the first write, so a malformed file leaves the database as
it was; writes then go in batches, one transaction each, and every batch is
idempotent (existing rows are found by their MovieLens ids and idempotency
keys), so an interrupted load is finished by running it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction

from apex_site.errors import ApplicationError
from catalog import services
from catalog.errors import CatalogErrorCode
from catalog.loaders.report import LoadReport, Progress
from catalog.matching import TitleYearIndex, display_title, match_key
from catalog.models import Movie
from learning import services as learning_services
from learning.services import InteractionRow
from recommendations.engine.data import movielens as ml
from recommendations.engine.errors import DataError, MalformedRowError

logger = logging.getLogger(__name__)

DATASETS = ("ml-100k", "ml-1m", "ml-latest-small", "ml-latest", "ml-20m", "ml-25m")
BATCH_SIZE = 5000


def source_label(dataset: str) -> str:
    return f"movielens:{dataset}"


def movie_id_field(dataset: str) -> str:
    """ML-100K has its own movie ids; every later release shares one id space."""
    return "ml100k_id" if dataset == "ml-100k" else "movielens_id"


def rating_key(dataset: str, ml_user: int, ml_item: int) -> str:
    return f"movielens:{dataset}:{ml_user}:{ml_item}"


def age_band(age: int | None) -> str:
    if age is None or pd.isna(age) or age <= 0:
        return ""
    for upper, band in ((18, "under_18"), (25, "18_24"), (35, "25_34"),
                        (45, "35_44"), (55, "45_54")):  # fmt: skip
        if age < upper:
            return band
    return "55_plus"


_GENDERS = {"M": "male", "F": "female"}


def read_release(
    dataset: str,
    *,
    path: str | Path | None = None,
    skip_malformed: bool = False,
    sources: Sequence[ml.SourceName] | None = None,
    cache_dir: str | Path | None = None,
) -> ml.MovieLensData:
    """Parse a release with the engine's reader; errors become ApplicationErrors.

    The reader refuses malformed rows and files, a folder of another layout and
    a release without ratings or movies; each maps to its own error code.
    """
    if dataset not in DATASETS:
        raise ApplicationError(
            f"Unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}."
        )
    policy = ml.LoaderPolicy(on_error="skip" if skip_malformed else "raise")
    try:
        data = ml.load_movielens(
            dataset,
            path=path,
            cache_dir=cache_dir,
            sources=sources or ml.DEFAULT_SOURCES,
            policy=policy,
        )
    except ml.MalformedFileError as exc:
        raise ApplicationError(
            f"{exc.path}, line {exc.line}: {exc.reason}. Nothing was loaded.",
            code=CatalogErrorCode.MALFORMED_FILE,
            detail={"file": exc.path, "line": exc.line, "reason": exc.reason},
        ) from exc
    except MalformedRowError as exc:
        raise ApplicationError(
            f"{exc.path}, line {exc.line}: {exc.reason}. Nothing was loaded; fix "
            "the file or pass --skip-malformed to load the other rows.",
            code=CatalogErrorCode.MALFORMED_ROW,
            detail={"file": exc.path, "line": exc.line, "reason": exc.reason},
        ) from exc
    except ml.EmptyReleaseError as exc:
        raise ApplicationError(
            f"{exc}; nothing was loaded.",
            code=CatalogErrorCode.EMPTY_RELEASE,
            detail={"file": exc.path, "table": exc.table, "reason": exc.reason},
        ) from exc
    except ml.WrongLayoutError as exc:
        raise ApplicationError(
            f"{exc}. Pass the --dataset that matches the folder, or a folder "
            f"holding {dataset}.",
            code=CatalogErrorCode.WRONG_LAYOUT,
            detail={
                "folder": exc.folder,
                "expected": exc.expected_files,
                "found": exc.found_files,
            },
        ) from exc
    except DataError as exc:
        raise ApplicationError(str(exc), code=exc.code) from exc
    return data


def movielens_load(
    *,
    dataset: str,
    path: str | Path | None = None,
    skip_malformed: bool = False,
    sources: Sequence[ml.SourceName] | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = BATCH_SIZE,
    data: ml.MovieLensData | None = None,
) -> LoadReport:
    started = time.monotonic()
    if data is None:
        data = read_release(
            dataset,
            path=path,
            skip_malformed=skip_malformed,
            sources=sources,
            cache_dir=cache_dir,
        )
    report = LoadReport(name=f"load_movielens {dataset}", source=data.source)
    for skipped in data.report.skipped:
        table = report.table(Path(skipped.path).name)
        table.skip("malformed row", f"{skipped.path}, line {skipped.line}: "
                   f"{skipped.reason}")  # fmt: skip
    report.notes.extend(f"source tried: {a}" for a in data.report.attempts)

    movie_ids = _load_movies(data, dataset, report, batch_size)
    user_ids = _load_users(data, dataset, report, batch_size)
    _load_ratings(data, dataset, report, batch_size, movie_ids, user_ids)
    if data.tags is not None:
        report.notes.append(
            f"tags.csv: {len(data.tags)} user tags read, not loaded (free-text "
            "user tags are not catalog keywords)"
        )

    logger.info("refreshing movie rating numbers and search documents")
    touched = list(set(movie_ids.values()))
    services.movie_rating_stats_refresh(movie_ids=touched)
    services.movie_search_vectors_refresh(movie_ids=touched)
    report.seconds = time.monotonic() - started
    return report


# ------------------------------------------------------------------- movies


def _none_if_na(value):
    return None if value is None or pd.isna(value) else value


def _load_movies(
    data: ml.MovieLensData, dataset: str, report: LoadReport, batch_size: int
) -> dict[int, int]:
    """Create or link movies; returns MovieLens item id -> Movie.pk."""
    field = movie_id_field(dataset)
    table = report.table("movies")
    frame = data.movies
    table.read = len(frame)

    known = dict(
        Movie.objects.filter(**{f"{field}__in": frame["item_id"].tolist()}).values_list(
            field, "id"
        )
    )
    by_tmdb = dict(
        Movie.objects.filter(
            **{f"{field}__isnull": True, "tmdb_id__isnull": False}
        ).values_list("tmdb_id", "id")
    )
    # Movies another release created: link them by title + year.
    unlinked = TitleYearIndex.build(
        Movie.objects.filter(**{f"{field}__isnull": True}).values_list(
            "id", "title", "year"
        )
    )

    genre_ids = services.genres_ensure(
        names=(g for genres in frame["genres"] for g in genres)
    )
    to_create: list[tuple[Movie, list[str]]] = []
    to_link: dict[int, tuple[int, dict]] = {}
    claimed: set[int] = set()
    for row in frame.itertuples(index=False):
        item_id = int(row.item_id)
        if item_id in known:
            table.skip("already loaded")
            continue
        year = _none_if_na(row.year)
        year = int(year) if year is not None else None
        tmdb_id = _none_if_na(row.tmdb_id)
        imdb_id = _none_if_na(row.imdb_id)
        title = display_title(row.title) or row.raw_title
        target = by_tmdb.get(int(tmdb_id)) if tmdb_id is not None else None
        if target is None:
            target = unlinked.find(title, year)
        if target is not None and target not in claimed:
            claimed.add(target)
            extra = {"imdb_id": f"tt{int(imdb_id):07d}"} if imdb_id else {}
            if tmdb_id is not None:
                extra["tmdb_id"] = int(tmdb_id)
            to_link[item_id] = (target, extra)
            continue
        release = _none_if_na(row.release_date)
        movie = Movie(
            title=title[:300],
            year=year,
            release_date=release.date() if release is not None else None,
            tmdb_id=int(tmdb_id) if tmdb_id is not None else None,
            imdb_id=f"tt{int(imdb_id):07d}" if imdb_id is not None else "",
            match_key=match_key(title, year)[:300],
            **{field: item_id},
        )
        to_create.append((movie, list(row.genres)))

    progress = Progress("movies", len(to_create) + len(to_link))
    done = 0
    taken_tmdb = set(
        Movie.objects.filter(tmdb_id__isnull=False).values_list("tmdb_id", flat=True)
    )
    for batch in _chunks(to_create, batch_size):
        with transaction.atomic():
            for movie, _genres in batch:
                # links.csv shares one tmdbId between two movieIds; keep the first.
                if movie.tmdb_id in taken_tmdb:
                    movie.tmdb_id = None
                elif movie.tmdb_id is not None:
                    taken_tmdb.add(movie.tmdb_id)
            created = Movie.objects.bulk_create([m for m, _ in batch])
            through = Movie.genres.through
            through.objects.bulk_create(
                [
                    through(movie_id=m.pk, genre_id=genre_ids[g])
                    for m, genres in zip(created, (g for _, g in batch), strict=True)
                    for g in genres
                ],
                ignore_conflicts=True,
            )
        for movie in created:
            known[getattr(movie, field)] = movie.pk
        done += len(batch)
        progress.update(done)
    table.loaded += len(to_create)

    linked = list(to_link.items())
    for batch in _chunks(linked, batch_size):
        with transaction.atomic():
            movies = Movie.objects.in_bulk([pk for _, (pk, _) in batch])
            changed = []
            for item_id, (pk, extra) in batch:
                movie = movies[pk]
                setattr(movie, field, item_id)
                if extra.get("tmdb_id") and not movie.tmdb_id:
                    if extra["tmdb_id"] not in taken_tmdb:
                        movie.tmdb_id = extra["tmdb_id"]
                        taken_tmdb.add(movie.tmdb_id)
                if extra.get("imdb_id") and not movie.imdb_id:
                    movie.imdb_id = extra["imdb_id"]
                changed.append(movie)
                known[item_id] = pk
            services.movies_update(movies=changed, fields=[field, "tmdb_id", "imdb_id"])
        done += len(batch)
        progress.update(done)
    table.loaded += len(linked)
    if linked:
        report.notes.append(
            f"movies: {len(linked)} linked to movies already in the catalog "
            "(same title + year or TMDB id)"
        )
    return known


# -------------------------------------------------------------------- users


def _load_users(
    data: ml.MovieLensData, dataset: str, report: LoadReport, batch_size: int
) -> dict[int, int]:
    """Create accounts for the release's users; returns MovieLens id -> User.pk."""
    User = get_user_model()
    source = source_label(dataset)
    table = report.table("users")
    if data.users is not None:
        frame = data.users
    else:  # csv releases have no users file: the raters are the users
        frame = pd.DataFrame({"user_id": sorted(data.ratings["user_id"].unique())})
        report.notes.append("users: no users file; accounts made from rating user ids")
    table.read = len(frame)
    known = {
        int(ext): pk
        for ext, pk in User.objects.filter(source=source).values_list(
            "external_id", "id"
        )
    }
    fresh = []
    for row in frame.to_dict("records"):
        uid = int(row["user_id"])
        if uid in known:
            table.skip("already loaded")
            continue
        age = row.get("age")
        fresh.append(
            User(
                email=f"{dataset}-user-{uid}@movielens.invalid",
                # An unusable password: imported people cannot sign in.
                password=make_password(None),
                display_name=f"MovieLens user {uid}",
                age_band=age_band(int(age)) if age is not None else "",
                gender=_GENDERS.get(str(row.get("gender") or "").upper(), ""),
                occupation=str(row.get("occupation") or "")[:64],
                source=source,
                external_id=str(uid),
            )
        )
    for batch in _chunks(fresh, batch_size):
        with transaction.atomic():
            created = User.objects.bulk_create(batch)
        known.update({int(u.external_id): u.pk for u in created})
    table.loaded = len(fresh)
    return known


# ------------------------------------------------------------------ ratings


def _load_ratings(
    data: ml.MovieLensData,
    dataset: str,
    report: LoadReport,
    batch_size: int,
    movie_ids: dict[int, int],
    user_ids: dict[int, int],
) -> None:
    table = report.table("ratings")
    ratings = data.ratings
    table.read = len(ratings)
    source = source_label(dataset)
    progress = Progress("ratings", len(ratings))

    def rows() -> Iterator[InteractionRow]:
        for user, item, rating, ts in zip(
            ratings["user_id"].tolist(),
            ratings["item_id"].tolist(),
            ratings["rating"].tolist(),
            ratings["timestamp"].tolist(),
            strict=True,
        ):
            movie_pk = movie_ids.get(item)
            if movie_pk is None:
                table.skip("movie id not in the movies file", f"movie {item}")
                continue
            user_pk = user_ids.get(user)
            if user_pk is None:
                table.skip("user id not in the users file", f"user {user}")
                continue
            yield InteractionRow(
                user_id=user_pk,
                movie_id=movie_pk,
                kind="rating",
                value=float(rating),
                occurred_at=datetime.fromtimestamp(ts, tz=UTC),
                source=source,
                idempotency_key=rating_key(dataset, user, item),
            )

    counts = learning_services.interactions_bulk_import(
        rows=rows(), batch_size=batch_size, on_batch=progress.update
    )
    table.loaded = counts.loaded
    if counts.already_present:
        table.skip("already loaded", n=counts.already_present)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
