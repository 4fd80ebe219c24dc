"""What learning needs from the catalog, without importing it.

``learning`` sits below ``catalog`` (the catalog's pages and loaders write
and read the interaction log through learning's services and selectors), so
it cannot import ``catalog``. The two reads it needs - which movies exist,
and their genre names - are declared here and provided by the catalog app
when it starts (``CatalogConfig.ready`` registers ``catalog.selectors``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class MovieCatalog(Protocol):
    def existing_movie_ids(
        self, *, movie_ids: Iterable[int], fresh: bool = False
    ) -> set[int]: ...

    def movie_genre_names(
        self, *, movie_ids: Iterable[int]
    ) -> dict[int, list[str]]: ...


_catalog: MovieCatalog | None = None


def catalog_register(provider: MovieCatalog) -> None:
    global _catalog
    _catalog = provider


def movie_catalog() -> MovieCatalog:
    if _catalog is None:
        raise RuntimeError("no movie catalog registered (is `catalog` installed?)")
    return _catalog
