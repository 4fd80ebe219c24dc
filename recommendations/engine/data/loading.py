"""Resolve a data spec (``--data``) to :class:`Interactions`."""

from __future__ import annotations

from pathlib import Path

from recommendations.engine.data import movielens, synthetic
from recommendations.engine.data.interactions import Interactions
from recommendations.engine.data.ordering import TieOrder, parse_ties
from recommendations.engine.errors import ConfigError

__all__ = ["load_data"]


def load_data(
    spec: str, *, seed: int = 0, ties: TieOrder | str | None = None
) -> Interactions:
    """A MovieLens name (``ml-100k``...), ``synthetic``, a folder or a CSV file.

    A MovieLens name is loaded through the sources of
    :func:`~recommendations.engine.data.movielens.load_movielens`; a CSV file
    holds ``user_id,item_id,rating,timestamp``; ``synthetic`` is a small planted
    data set drawn with ``seed``. ``ties``: the order of same-second events
    (:func:`~recommendations.engine.data.ordering.parse_ties`; default the
    seeded random order, ``"item"`` for the item-id order of peer figures).
    """
    order = parse_ties(ties)
    if spec == "synthetic":
        return synthetic.generate(
            users=200, items=120, interactions=5000, seed=seed
        ).interactions(ties=order)
    path = Path(spec)
    if path.is_file():
        return Interactions.from_csv(path, ties=order)
    if path.is_dir():
        return Interactions.from_movielens(movielens.read_folder(path), ties=order)
    if spec.startswith("ml-"):
        return Interactions.from_movielens(movielens.load_movielens(spec), ties=order)
    raise ConfigError(f"--data {spec!r} is not a data set name, folder or CSV file")
