"""Item metadata for the serving bundle, read from the catalog.

:func:`build_item_metadata` returns an engine
:class:`~recommendations.engine.pipeline.items.ItemMetadata` indexed like the
given Movie primary keys (the trained ensemble's item vocabulary), from the
facts ``catalog.selectors.movie_facts`` reads (five queries in all).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from catalog import selectors as catalog_selectors
from recommendations.engine.pipeline.items import LEAD_CAST, ItemMetadata


def build_item_metadata(movie_ids: Sequence[Any]) -> ItemMetadata:
    """``ItemMetadata`` for ``movie_ids`` (Movie pks, position = dense index)."""
    facts = catalog_selectors.movie_facts(movie_ids=movie_ids, lead_cast=LEAD_CAST)
    titles = facts.pop("titles")
    return ItemMetadata.build(titles, **facts)
