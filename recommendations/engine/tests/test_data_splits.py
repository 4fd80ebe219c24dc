"""Interactions container and splits: order, ties, no leakage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from recommendations.engine.data import Interactions, global_temporal, leave_one_out
from recommendations.engine.errors import (
    MalformedRowError,
    UnknownItemError,
    UnknownUserError,
)


def frame(rows: list[tuple[object, object, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def test_loo_takes_the_last_events_breaking_time_ties_by_item_id_if_asked() -> None:
    data = Interactions.from_frame(
        frame([
            ("u", 30, 4, 100), ("u", 20, 4, 300), ("u", 10, 5, 300),  # tie at t=300
            ("u", 40, 3, 200), ("v", 10, 1, 5), ("v", 20, 1, 6), ("w", 10, 2, 9),
        ]),
        ties="item",  # the peer figures' order (test_tie_order.py: the default)
    )  # fmt: skip
    split = leave_one_out(data)
    ext = data.items.ids
    by_user = {
        name: {
            data.users.ids[u]: ext[i].tolist()
            for u, i in zip(part.user_index, part.item_index, strict=True)
        }
        for name, part in (("valid", split.valid), ("test", split.test))
    }  # fmt: skip
    assert by_user["test"] == {"u": 20, "v": 20}  # (300, 20) sorts after (300, 10)
    assert by_user["valid"] == {"u": 10}  # v has 2 events: no validation
    u = data.users.index(["u"])[0]
    assert ext[split.train.sequence(u)].tolist() == [30, 40]
    w = data.users.index(["w"])[0]
    assert ext[split.train.sequence(w)].tolist() == [10]  # 1 event: train only


def test_loo_never_leaks_held_out_events_into_training(tiny_data: Interactions) -> None:
    split = leave_one_out(tiny_data)
    assert len(split.train) + len(split.valid) + len(split.test) == len(tiny_data)
    train = set(
        zip(
            split.train.user_index.tolist(),
            split.train.item_index.tolist(),
            strict=True,
        )
    )
    for part in (split.valid, split.test):
        pairs = set(
            zip(part.user_index.tolist(), part.item_index.tolist(), strict=True)
        )
        assert not pairs & train
    # every held-out event is later than (or tied with) all of the user's train events
    last_train = np.full(tiny_data.n_users, -1)
    np.maximum.at(last_train, split.train.user_index, split.train.timestamps)
    assert (split.test.timestamps >= last_train[split.test.user_index]).all()
    task = split.test_task()
    assert task.exclude.multiply(task.targets).nnz == 0
    assert (task.targets.sum(axis=1) == 1).all()
    # the test history includes the validation item
    u = int(split.valid.user_index[0])
    row = int(np.flatnonzero(task.users == u)[0])
    assert split.valid.item_index[0] in task.histories[row].items


def test_global_temporal_split_respects_the_cut_off(tiny_data: Interactions) -> None:
    split = global_temporal(tiny_data, test_fraction=0.2, valid_fraction=0.1)
    assert split.train.timestamps.max() < split.valid.timestamps.min()
    assert split.valid.timestamps.max() < split.test.timestamps.min()
    trained_users = set(split.train.user_index.tolist())
    assert set(split.test.user_index.tolist()) <= trained_users


def test_vocabularies_map_both_ways_and_reject_unknown_ids() -> None:
    data = Interactions.from_frame(frame([(7, "b", 1, 1), (3, "a", 1, 2)]))
    assert data.items.ids.tolist() == ["a", "b"]
    assert data.items.index(["b", "a"]).tolist() == [1, 0]
    assert data.items.id_of([0]).tolist() == ["a"]
    with pytest.raises(UnknownItemError, match="unknown item id 'zzz'"):
        data.items.index(["zzz"])
    with pytest.raises(UnknownUserError):
        data.users.index([99])
    m = data.matrix()
    assert m.shape == (2, 2) and m.sum() == 2


def test_csv_input(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,item_id,rating,timestamp\n1,10,4,100\n1,11,5,50\n2,10,3,7\n"
    )
    data = Interactions.from_csv(path)
    assert data.describe() == {
        "name": "events",
        "users": 2,
        "items": 2,
        "interactions": 3,
        "ties": "random",
        "tie_seed": 0,
    }
    assert data.items.ids[data.sequence(0)].tolist() == [11, 10]  # time order
    path.write_text("user_id,item_id,rating,timestamp\n1,10,4,100\n1,11,x,50\n")
    with pytest.raises(MalformedRowError, match="line 3"):
        Interactions.from_csv(path)


def test_synthetic_generator_plants_its_structure(synthetic) -> None:  # noqa: ANN001
    truth = synthetic.truth
    ratings = synthetic.ratings.sort_values(["user_id", "timestamp"])
    # taste clusters: most events fall in the user's home or drift cluster
    cl = truth.item_cluster[ratings["item_id"].to_numpy()]
    home = truth.user_cluster[ratings["user_id"].to_numpy()]
    drift = truth.user_drift_cluster[ratings["user_id"].to_numpy()]
    assert ((cl == home) | (cl == drift)).mean() > 0.8
    # chains: the planted successor follows far more often than chance
    prev = ratings.groupby("user_id")["item_id"].shift()
    has_prev = prev.notna().to_numpy()
    follows = (
        truth.successor[prev[has_prev].astype(int).to_numpy()]
        == ratings["item_id"].to_numpy()[has_prev]
    )
    assert follows.mean() > 0.3
    # power law: items with a larger planted weight are consumed more often
    counts = np.bincount(ratings["item_id"], minlength=len(truth.item_weight))
    assert scipy.stats.spearmanr(truth.item_weight, counts).statistic > 0.4
    # determinism
    from recommendations.engine.data.synthetic import generate

    again = generate(synthetic.config)
    pd.testing.assert_frame_equal(again.ratings, synthetic.ratings)
