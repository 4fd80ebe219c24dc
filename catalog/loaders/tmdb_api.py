"""Live enrichment through the TMDB API (``TMDB_API_KEY``).

Fetches ``/movie/{id}`` with credits, keywords and videos appended and fills
poster path, overview, cast, director, keywords, collection, votes and the
trailer key. Movies without a TMDB id are looked up with ``/search/movie`` by
title + year. Responses are cached on disk (re-runs cost no requests), calls
are spaced to stay under the configured rate, and 429 / 5xx / network errors
are retried with exponential back-off (honouring ``Retry-After``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import date
from pathlib import Path

from django.conf import settings
from django.db import transaction

from apex_site.errors import ApplicationError
from catalog import services
from catalog.errors import CatalogErrorCode
from catalog.loaders.report import LoadReport, Progress
from catalog.matching import title_keys
from catalog.models import Collection, Credit, Movie, Person

logger = logging.getLogger(__name__)

API_ROOT = "https://api.themoviedb.org/3"
CACHE_SECONDS = 30 * 24 * 3600
MAX_CAST = 10
Transport = Callable[[str, dict[str, str], float], tuple[int, dict[str, str], bytes]]


def http_get(
    url: str, headers: dict[str, str], timeout: float
) -> tuple[int, dict, bytes]:
    """One GET; the network boundary that tests replace."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers or {}), exc.read() or b""


class TmdbClient:
    def __init__(
        self,
        api_key: str,
        *,
        cache_dir: Path,
        requests_per_second: float = 20.0,
        max_retries: int = 5,
        transport: Transport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 10.0,
    ) -> None:
        if not api_key:
            raise ApplicationError(
                "TMDB_API_KEY is not set.", code=CatalogErrorCode.TMDB_NO_KEY
            )
        self.api_key = api_key
        self.cache_dir = cache_dir
        self.interval = 1.0 / requests_per_second
        self.max_retries = max_retries
        self.transport = transport or http_get
        self.sleep = sleep
        self.timeout = timeout
        self._last_call = 0.0
        self.requests = 0
        self.cache_hits = 0

    def _auth(self, params: dict) -> tuple[dict, dict]:
        # A v4 "read access token" is a JWT (starts with eyJ) and goes in a
        # header; a v3 key goes in the query string.
        if self.api_key.startswith("eyJ"):
            return params, {"Authorization": f"Bearer {self.api_key}"}
        return {**params, "api_key": self.api_key}, {}

    def _cache_file(self, path: str, params: dict) -> Path:
        key = json.dumps([path, sorted(params.items())])
        return self.cache_dir / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def get(self, path: str, params: dict | None = None) -> dict | None:
        """The decoded JSON, or ``None`` for a 404."""
        params = params or {}
        cached = self._cache_file(path, params)
        if cached.is_file() and time.time() - cached.stat().st_mtime < CACHE_SECONDS:
            self.cache_hits += 1
            body = json.loads(cached.read_text())
            return body.get("data")
        query, headers = self._auth(params)
        url = f"{API_ROOT}{path}?{urllib.parse.urlencode(query)}"
        headers = {"Accept": "application/json", **headers}
        for attempt in range(self.max_retries + 1):
            wait = self._last_call + self.interval - time.monotonic()
            if wait > 0:
                self.sleep(wait)
            self._last_call = time.monotonic()
            self.requests += 1
            try:
                status, response_headers, body = self.transport(
                    url, headers, self.timeout
                )
            except (OSError, urllib.error.URLError) as exc:
                status, response_headers, body = 0, {}, str(exc).encode()
            if status == 200:
                data = json.loads(body)
                self._store(cached, data)
                return data
            if status == 404:
                self._store(cached, None)
                return None
            if status == 401:
                raise ApplicationError(
                    "TMDB rejected the API key (401).",
                    code=CatalogErrorCode.TMDB_UNAUTHORIZED,
                )
            if status != 429 and status < 500 and status != 0:
                raise ApplicationError(
                    f"TMDB answered {status} for {path}.",
                    code=CatalogErrorCode.TMDB_ERROR,
                )
            if attempt == self.max_retries:
                break
            delay = min(2.0**attempt, 30.0)
            retry_after = _header(response_headers, "Retry-After")
            if status == 429 and retry_after and retry_after.isdigit():
                delay = max(delay, float(retry_after))
            logger.warning(
                "TMDB call failed, retrying in %.1fs",
                delay,
                extra={"status": status, "path": path, "attempt": attempt + 1},
            )
            self.sleep(delay)
        raise ApplicationError(
            f"TMDB did not answer {path} after {self.max_retries + 1} tries.",
            code=CatalogErrorCode.TMDB_UNAVAILABLE,
        )

    def _store(self, path: Path, data: dict | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"data": data}))
        tmp.replace(path)


def _header(headers: dict, name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value).strip()
    return None


def default_client(**kwargs) -> TmdbClient:
    return TmdbClient(
        settings.TMDB_API_KEY,
        cache_dir=Path(settings.DATA_DIR) / "cache" / "tmdb",
        requests_per_second=settings.APEX_TMDB_REQUESTS_PER_SECOND,
        **kwargs,
    )


# ------------------------------------------------------------------ enrichment


def tmdb_enrich(*, client: TmdbClient, limit: int | None = None) -> LoadReport:
    """Enrich movies that have no poster yet, most-rated first."""
    started = time.monotonic()
    report = LoadReport(name="enrich_tmdb", source=API_ROOT)
    table = report.table("movies")
    movies = list(
        Movie.objects.filter(poster_path="").order_by("-rating_count", "id")[
            : limit or None
        ]
    )
    table.read = len(movies)
    progress = Progress("tmdb enrichment", len(movies))
    touched = []
    for done, movie in enumerate(movies, start=1):
        if movie.tmdb_id is None:
            tmdb_id = _find_tmdb_id(client, movie)
            if tmdb_id is None:
                table.skip("not found on TMDB by title + year")
                progress.update(done)
                continue
            movie.tmdb_id = tmdb_id
        details = client.get(
            f"/movie/{movie.tmdb_id}",
            {"append_to_response": "credits,keywords,videos"},
        )
        if details is None:
            table.skip("TMDB id unknown to TMDB (404)")
        else:
            _apply_details(movie, details)
            touched.append(movie.pk)
            table.loaded += 1
        progress.update(done)
    services.movie_search_vectors_refresh(movie_ids=touched)
    report.notes.append(
        f"HTTP requests: {client.requests}, answered from cache: {client.cache_hits}"
    )
    report.seconds = time.monotonic() - started
    return report


def _find_tmdb_id(client: TmdbClient, movie: Movie) -> int | None:
    params = {"query": movie.title}
    if movie.year:
        params["year"] = str(movie.year)
    found = client.get("/search/movie", params) or {}
    wanted = set(title_keys(movie.title))
    taken = Movie.objects.filter(tmdb_id__isnull=False).exclude(pk=movie.pk)
    for result in (found.get("results") or [])[:5]:
        names = {k for t in (result.get("title"), result.get("original_title")) if t
                 for k in title_keys(t)}  # fmt: skip
        if wanted & names and not taken.filter(tmdb_id=result.get("id")).exists():
            return int(result["id"])
    return None


def _apply_details(movie: Movie, data: dict) -> None:
    with transaction.atomic():
        movie.poster_path = (data.get("poster_path") or "")[:200]
        movie.overview = data.get("overview") or movie.overview
        movie.tagline = (data.get("tagline") or movie.tagline)[:500]
        movie.runtime = data.get("runtime") or movie.runtime
        movie.vote_average = data.get("vote_average", movie.vote_average)
        movie.vote_count = data.get("vote_count", movie.vote_count)
        movie.tmdb_popularity = data.get("popularity", movie.tmdb_popularity)
        movie.original_title = (data.get("original_title") or movie.original_title)[
            :300
        ]
        movie.original_language = (data.get("original_language") or "")[:12]
        if data.get("release_date") and not movie.release_date:
            try:
                movie.release_date = date.fromisoformat(data["release_date"])
            except ValueError:
                pass
        collection = data.get("belongs_to_collection")
        if collection and collection.get("id"):
            movie.collection, _ = Collection.objects.update_or_create(
                tmdb_id=collection["id"], defaults={"name": collection.get("name", "")}
            )
        videos = (data.get("videos") or {}).get("results") or []
        trailers = [
            v
            for v in videos
            if v.get("site") == "YouTube" and v.get("type") == "Trailer"
        ]
        if trailers:
            movie.trailer_key = trailers[0].get("key", "")[:64]
        movie.save()

        if not movie.genres.exists():
            genre_ids = services.genres_ensure(
                names=[g["name"] for g in data.get("genres") or [] if g.get("name")]
            )
            movie.genres.add(*genre_ids.values())
        keywords = (data.get("keywords") or {}).get("keywords") or []
        keyword_ids = services.keywords_ensure(
            names=[k["name"] for k in keywords if k.get("name")]
        )
        movie.keywords.add(*keyword_ids.values())

        credits = data.get("credits") or {}
        people = [
            (Credit.Role.DIRECTOR, i, p)
            for i, p in enumerate(
                p for p in credits.get("crew") or [] if p.get("job") == "Director"
            )
        ] + [
            (Credit.Role.CAST, p.get("order", i), p)
            for i, p in enumerate((credits.get("cast") or [])[:MAX_CAST])
        ]
        for role, order, entry in people:
            if not entry.get("id") or not entry.get("name"):
                continue
            person = _person(entry)
            Credit.objects.update_or_create(
                movie=movie,
                person=person,
                role=role,
                defaults={
                    "order": order,
                    "character": (entry.get("character") or "")[:300],
                },
            )


def _person(entry: dict) -> Person:
    """Find by TMDB id, else adopt a same-named person from the CSV import."""
    person = Person.objects.filter(tmdb_id=entry["id"]).first()
    if person is None:
        person = Person.objects.filter(name=entry["name"], tmdb_id__isnull=True).first()
    if person is None:
        person = Person(name=entry["name"][:200])
    person.tmdb_id = entry["id"]
    person.profile_path = (entry.get("profile_path") or "")[:200]
    person.save()
    return person
