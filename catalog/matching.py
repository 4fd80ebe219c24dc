"""Normalised title + year keys for matching movies across data sets.

MovieLens writes "Usual Suspects, The", adds alternate titles in brackets
("Shanghai Triad (Yao a yao yao dao waipo qiao)") and uses accents that other
sources spell differently; TMDB writes "The Usual Suspects". A key folds all
of that away so both land on the same string.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable

_ARTICLES = (
    "the", "a", "an", "les", "la", "le", "l'", "il", "der", "die", "das", "el",
    "los", "las", "lo", "i", "gli", "un", "une", "det", "den",
)  # fmt: skip
_TRAILING_ARTICLE = re.compile(r"^(?P<rest>.+?),\s*(?P<article>" + "|".join(
    re.escape(a) for a in _ARTICLES
) + r")$", re.IGNORECASE)  # fmt: skip
_BRACKETS = re.compile(r"\s*\([^)]*\)")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def display_title(raw: str) -> str:
    """``"Usual Suspects, The"`` -> ``"The Usual Suspects"`` (brackets kept)."""
    raw = raw.strip()
    head, bracket, tail = raw.partition(" (")
    match = _TRAILING_ARTICLE.match(head)
    if match:
        article = match.group("article")
        sep = "" if article.endswith("'") else " "
        head = f"{article}{sep}{match.group('rest')}"
    return f"{head}{bracket}{tail}"


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("&", " and ")
    return _NON_WORD.sub(" ", text).strip()


def title_keys(title: str) -> list[str]:
    """Match keys of a title: the full folded title, then without brackets."""
    shown = display_title(title)
    keys = [_fold(shown)]
    bare = _fold(_BRACKETS.sub("", shown))
    if bare and bare not in keys:
        keys.append(bare)
    # "The Matrix" and "Matrix" should meet: also a key without a leading article.
    for key in list(keys):
        first, _, rest = key.partition(" ")
        if rest and first in _ARTICLES:
            keys.append(rest)
    return [k for k in keys if k]


def match_key(title: str, year: int | None) -> str:
    """The stored key of a movie: first title key + year."""
    keys = title_keys(title)
    return f"{keys[0] if keys else ''}|{year or ''}"


class TitleYearIndex:
    """Finds a candidate by title + year; ambiguous or missing -> ``None``.

    Exact year first; one year off only when that is unique, because festival
    and release years often differ by one (98% of the links.csv pairs agree
    exactly, most of the rest are one year apart).
    """

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, int | None], set[int]] = defaultdict(set)

    def add(self, ident: int, title: str, year: int | None) -> None:
        for key in title_keys(title):
            self._by_key[(key, year)].add(ident)

    @classmethod
    def build(cls, rows: Iterable[tuple[int, str, int | None]]) -> TitleYearIndex:
        index = cls()
        for ident, title, year in rows:
            index.add(ident, title, year)
        return index

    def find(self, title: str, year: int | None) -> int | None:
        keys = title_keys(title)
        for years in ([year], [year - 1, year + 1] if year else []):
            found: set[int] = set()
            for key in keys:
                for y in years:
                    found |= self._by_key.get((key, y), set())
                if len(found) == 1:
                    return next(iter(found))
                if len(found) > 1:
                    return None  # ambiguous: never guess
        return None
