"""Item metadata and the TF-IDF content model (neighbours, pickle-free save/load)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommendations.engine.data.interactions import Interactions
from recommendations.engine.errors import DataError
from recommendations.engine.pipeline.content import ContentModel
from recommendations.engine.pipeline.items import ItemMetadata

TEXTS = [
    "Star Wars space rebels empire jedi",
    "The Empire Strikes Back space empire jedi rebels",
    "Return of the Jedi space jedi empire",
    "Toy Story toys cowboy space ranger animation",
    "Casablanca war romance nightclub",
    "Heat crime thriller heist los angeles",
]


def test_neighbours_find_the_franchise_and_skip_inputs_and_excluded() -> None:
    model = ContentModel.fit(TEXTS)
    ids, sims = model.neighbours(np.array([0]), 3)
    assert set(ids[:2].tolist()) == {1, 2}
    assert 0 not in ids and np.all(np.diff(sims) <= 0) and np.all(sims > 0)
    ids, _ = model.neighbours(np.array([0]), 3, exclude=np.array([1]))
    assert ids[0] == 2 and 1 not in ids
    sim = model.similarity(np.array([0, 1, 4]))
    np.testing.assert_allclose(np.diag(sim), 1.0, rtol=1e-5)
    assert sim[0, 1] > sim[0, 2] >= 0.0


def test_save_load_round_trip_gives_identical_vectors(tmp_path: Path) -> None:
    model = ContentModel.fit(TEXTS)
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "content.json", "idf.npy", "matrix.npz",
    ]  # fmt: skip
    loaded = ContentModel.load(tmp_path)
    assert (loaded.matrix != model.matrix).nnz == 0
    new = ["a jedi in space", "heist crime in los angeles", "nothing known here"]
    assert (loaded.transform(new) != model.transform(new)).nnz == 0
    assert (loaded.transform(TEXTS) != model.matrix).nnz == 0
    a, b = model.neighbours(np.array([3]), 4), loaded.neighbours(np.array([3]), 4)
    np.testing.assert_array_equal(a[0], b[0])
    (tmp_path / "content.json").write_text("{broken")
    with pytest.raises(DataError):
        ContentModel.load(tmp_path)


def test_metadata_build_and_text() -> None:
    meta = ItemMetadata.build(
        ["A", "B"],
        years=[1999, None],
        genres=[["Drama", "War"], []],
        directors=[[7], [7]],
        cast=[[1, 2, 3, 4], [4]],
        collections=[3, None],
        overviews=["an overview", None],
        keywords=[["soldier"], []],
        person_names={7: "Dee Rector", 1: "Lee Ding"},
        collection_names={3: "Saga"},
    )
    assert meta.cast_of(0) == [1, 2, 3]  # lead cast: the first three
    assert np.isnan(meta.years[1]) and meta.collections.tolist() == [3, -1]
    assert meta.text(0) == "A Drama War an overview soldier Dee Rector Lee Ding Saga"
    assert meta.shared(meta.directors, np.array([0]), np.array([1])).tolist() == [[1]]
    assert meta.shared(meta.cast, np.array([0]), np.array([1])).tolist() == [[0]]
    with pytest.raises(DataError):
        ItemMetadata.build(["A"], genres=[["x"], ["y"]])


def test_metadata_from_interactions() -> None:
    frame = pd.DataFrame(
        {
            "user_id": [1, 1, 2],
            "item_id": [10, 20, 20],
            "rating": 4.0,
            "timestamp": [1, 2, 3],
        }
    )
    features = pd.DataFrame(
        {"title": ["Ten", "Twenty"], "year": pd.array([1990, None], dtype="Int64"),
         "genres": [["Drama"], ["Comedy", "Drama"]]},
        index=[10, 20],
    )  # fmt: skip
    data = Interactions.from_frame(frame, item_features=features)
    meta = ItemMetadata.from_interactions(data)
    assert meta.titles == ("Ten", "Twenty")
    assert meta.years[0] == 1990 and np.isnan(meta.years[1])
    assert meta.genres_of(1) == ["Comedy", "Drama"]
    assert meta.directors.shape == (2, 0) and (meta.collections == -1).all()
    bare = ItemMetadata.from_interactions(Interactions.from_frame(frame))
    assert bare.titles == ("10", "20")
