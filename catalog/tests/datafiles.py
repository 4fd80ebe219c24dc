"""Tiny MovieLens / TMDB files written per test, in the real layouts.

Movies are chosen so TMDB matching has known answers: Toy Story and Heat are
in the TMDB file (Heat with a different year than a remake), "Mystery Film"
is not; ML-100K's "Usual Suspects, The" must meet TMDB's "The Usual Suspects".
"""

from __future__ import annotations

import json
from pathlib import Path

ML100K_GENRES = (
    "unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\n"
    "Crime|6\nDocumentary|7\nDrama|8\nFantasy|9\nFilm-Noir|10\nHorror|11\n"
    "Musical|12\nMystery|13\nRomance|14\nSci-Fi|15\nThriller|16\nWar|17\nWestern|18\n"
)


def _flags(*genres: int) -> str:
    return "|".join("1" if i in genres else "0" for i in range(19))


ML100K_ITEMS = [
    f"1|Toy Story (1995)|01-Jan-1995||http://imdb/toy|{_flags(3, 4, 5)}",
    f"2|Heat (1995)|01-Jan-1995||http://imdb/heat|{_flags(1, 6, 16)}",
    f"3|Usual Suspects, The (1995)|14-Aug-1995||http://imdb/us|{_flags(6, 16)}",
    f"4|Mystery Film (1994)|01-Jan-1994||http://imdb/m|{_flags(13)}",
]
ML100K_USERS = ["1|24|M|technician|85711", "2|53|F|other|94043", "3|17|M|student|3"]
ML100K_RATINGS = [
    "1\t1\t5\t874965758",
    "1\t2\t3\t876893171",
    "2\t1\t4\t878542960",
    "2\t3\t5\t876893119",
    "3\t1\t2\t889751712",
    "3\t4\t1\t875071561",
]


def write_ml100k(folder: Path, *, ratings: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("\n".join(ratings or ML100K_RATINGS) + "\n")
    (folder / "u.item").write_bytes(("\n".join(ML100K_ITEMS) + "\n").encode("latin-1"))
    (folder / "u.user").write_text("\n".join(ML100K_USERS) + "\n")
    (folder / "u.genre").write_text(ML100K_GENRES)
    return folder


def write_ml1m(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "2::Jumanji (1995)::Adventure|Children's|Fantasy\n"
        "3::Amélie (2001)::Comedy|Romance\n".encode("latin-1")
    )
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    (folder / "ratings.dat").write_text(
        "1::1::5::978300760\n1::2::3::978302109\n2::3::4::978301968\n"
    )
    return folder


def write_csv_release(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "movies.csv").write_text(
        "movieId,title,genres\r\n"
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\r\n"
        '6,"Heat (1995)",Action|Crime|Thriller\r\n'
        '50,"Usual Suspects, The (1995)",Crime|Mystery|Thriller\r\n'
        '2571,"Matrix, The (1999)",Action|Sci-Fi|Thriller\r\n'
    )
    (folder / "links.csv").write_text(
        "movieId,imdbId,tmdbId\r\n1,0114709,862\r\n6,0113277,949\r\n"
        "50,0114814,629\r\n2571,0133093,603\r\n"
    )
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n"
        "1,2571,4.5,964981247\r\n2,50,5.0,1445714835\r\n"
    )
    (folder / "tags.csv").write_text(
        "userId,movieId,tag,timestamp\r\n2,2571,cyberpunk,1445714994\r\n"
    )
    return folder


def _names(*names: str) -> str:
    return json.dumps([{"id": i + 1, "name": n} for i, n in enumerate(names)])


TMDB_HEADER = [
    "budget", "genres", "homepage", "id", "keywords", "original_language",
    "original_title", "overview", "popularity", "production_companies",
    "production_countries", "release_date", "revenue", "runtime",
    "spoken_languages", "status", "tagline", "title", "vote_average", "vote_count",
]  # fmt: skip


def tmdb_row(tmdb_id, title, date, overview, *, genres=(), keywords=(), runtime="90"):
    return {
        "budget": "0", "genres": _names(*genres), "homepage": "", "id": str(tmdb_id),
        "keywords": _names(*keywords), "original_language": "en",
        "original_title": title, "overview": overview, "popularity": "12.5",
        "production_companies": "[]", "production_countries": "[]",
        "release_date": date, "revenue": "0", "runtime": runtime,
        "spoken_languages": "[]", "status": "Released", "tagline": "",
        "title": title, "vote_average": "7.7", "vote_count": "5415",
    }  # fmt: skip


TMDB_ROWS = [
    tmdb_row(
        862,
        "Toy Story",
        "1995-10-30",
        "Woody the cowboy doll and Buzz Lightyear, toys that come alive.",
        genres=("Animation", "Family"),
        keywords=("toy", "friendship"),
    ),  # fmt: skip
    tmdb_row(
        949,
        "Heat",
        "1995-12-15",
        "A group of professional bank robbers.",
        keywords=("bank robbery",),
    ),  # fmt: skip
    tmdb_row(
        629,
        "The Usual Suspects",
        "1995-07-19",
        "Keyser Söze.",
        keywords=("plot twist",),
    ),  # fmt: skip
    tmdb_row(99999, "Heat", "2013-01-01", "A remake nobody matched."),
]


def write_tmdb_movies(path: Path, rows: list[dict] | None = None) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=TMDB_HEADER)
        writer.writeheader()
        writer.writerows(TMDB_ROWS if rows is None else rows)
    return path


def write_tmdb_credits(path: Path, extra_lines: list[str] = ()) -> Path:
    lines = [
        "id,original_title,cast,director,keywords,genres",
        "862,Toy Story,Tom Hanks|Tim Allen|Don Rickles,John Lasseter,toy|pixar,"
        "Animation|Comedy|Family",
        "949,Heat,Al Pacino|Robert De Niro,Michael Mann,heist,Action|Crime",
        "12345,Unrelated,Nobody,No One,,Drama",
        *extra_lines,
    ]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path
