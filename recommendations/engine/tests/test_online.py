"""Online learning: incremental tables, the guard rail, prequential evaluation."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.engine.data import Interactions, Split, leave_one_out
from recommendations.engine.data.synthetic import generate
from recommendations.engine.evaluation import validation_ndcg
from recommendations.engine.evaluation.prequential import (
    PrequentialConfig,
    run_prequential,
)
from recommendations.engine.models.kan import KAN
from recommendations.engine.models.lightgcn import LightGCN
from recommendations.engine.online import (
    MAX_LR,
    OnlineConfig,
    OnlineEvent,
    OnlineLearner,
    OnlineTables,
)
from recommendations.engine.online.events import stream_events
from recommendations.engine.online.lightgcn import lightgcn_user_vector
from recommendations.engine.training import Trainer

SMALL = {"samples_per_epoch": 256, "negatives": 8, "svd_dim": 8}


def _csr(tables: dict[str, np.ndarray], name: str, n: int) -> np.ndarray:
    m = sp.csr_matrix(
        (tables[f"{name}_data"], tables[f"{name}_indices"], tables[f"{name}_indptr"]),
        shape=(n, n),
    )
    return m.toarray()


def _time_split(data: Interactions, q: float) -> tuple[Interactions, np.ndarray]:
    cut = np.quantile(data.timestamps, q, method="higher")
    return data.select(data.timestamps < cut), data.timestamps >= cut


@pytest.fixture(scope="module")
def streamed(tiny_data: Interactions) -> tuple[KAN, OnlineTables, KAN]:
    """A KAN fitted on the first 70 % of time whose tables then took the rest
    incrementally (batches of 50), and a KAN whose tables were rebuilt on
    all events. ``neighbors`` covers the catalog, so co-occurrence is exact
    once every row is refreshed."""
    train, stream = _time_split(tiny_data, 0.7)
    kan = KAN(**SMALL, neighbors=tiny_data.n_items)
    kan.fit(train, None, Trainer(max_epochs=1))
    tables = OnlineTables(kan)
    events = stream_events(tiny_data, stream)
    for s in range(0, len(events), 50):
        tables.update(events[s : s + 50])
    rebuilt = KAN(kan.config)
    rebuilt.items = tiny_data.items
    rebuilt._fit_tables(tiny_data)
    return kan, tables, rebuilt


def test_incremental_tables_equal_a_rebuild_where_exact(streamed) -> None:
    kan, _, rebuilt = streamed
    n = kan.n_items
    for key in ("log_pop", "last_seen", "first_seen", "t_end", "trans_row_total"):
        np.testing.assert_allclose(kan.tables[key], rebuilt.tables[key], rtol=1e-6)
    np.testing.assert_allclose(
        _csr(kan.tables, "trans", n), _csr(rebuilt.tables, "trans", n), atol=1e-6
    )


def test_cooccurrence_increments_are_exact_after_a_full_refresh(streamed) -> None:
    kan, tables, rebuilt = streamed
    n = kan.n_items
    before = _csr(kan.tables, "cooc", n)
    target = _csr(rebuilt.tables, "cooc", n)
    tables.refresh_cooc()  # every row from the co-counts and current counts
    np.testing.assert_allclose(_csr(kan.tables, "cooc", n), target, atol=1e-6)
    # the lazy rows were already closer to the rebuild than the fitted table
    assert np.abs(before - target).mean() < 0.05


def test_table_updates_replace_arrays_and_drop_the_csr_cache(
    tiny_data: Interactions,
) -> None:
    train, stream = _time_split(tiny_data, 0.8)
    kan = KAN(**SMALL)
    kan.fit(train, None, Trainer(max_epochs=1))
    history = [0, 1, 2]
    kan.score([history])  # fills the CSR cache
    old = dict(kan.tables)
    old_trans = old["trans_data"].copy()
    tables = OnlineTables(kan)
    event = OnlineEvent(np.array(history), 5, float(tiny_data.timestamps.max()) + 1)
    for _ in range(30):
        tables.update([event])
    np.testing.assert_array_equal(old["trans_data"], old_trans)  # not mutated
    assert kan.tables["trans_data"] is not old["trans_data"]
    scores = kan.score([history])[0]
    total = float(old["trans_row_total"][2])
    count = float(_csr(old, "trans", kan.n_items)[2, 5]) * total
    trans = _csr(kan.tables, "trans", kan.n_items)
    assert trans[2, 5] == pytest.approx((count + 30) / (total + 30), rel=1e-5)
    fresh = KAN(kan.config)
    fresh.items, fresh.n_users = kan.items, kan.n_users
    fresh.set_state(kan.get_state())
    np.testing.assert_allclose(fresh.score([history])[0], scores, rtol=1e-5)


def test_an_item_cold_at_fit_gets_counts_neighbours_and_an_embedding(
    tiny_data: Interactions,
) -> None:
    cold = 7
    train, stream = _time_split(tiny_data, 0.7)
    train = train.select(train.item_index != cold)
    kan = KAN(**SMALL)
    kan.fit(train, None, Trainer(max_epochs=1))
    assert kan.tables["log_pop"][cold] == 0
    assert np.linalg.norm(kan.tables["emb"][cold]) < 1e-6
    tables = OnlineTables(kan)
    events = stream_events(tiny_data, stream)
    for s in range(0, len(events), 50):
        tables.update(events[s : s + 50])
    n_users = len({e.user for e in events if e.item == cold})
    assert n_users > 0
    assert kan.tables["log_pop"][cold] == pytest.approx(np.log1p(n_users))
    assert kan.tables["last_seen"][cold] == max(
        e.timestamp for e in events if e.item == cold
    )
    assert _csr(kan.tables, "cooc", kan.n_items)[cold].max() > 0
    assert np.linalg.norm(kan.tables["emb"][cold]) == pytest.approx(1.0, rel=1e-5)


# ------------------------------------------------------------------ guard
@pytest.fixture()
def fitted_kan(tiny_split: Split) -> KAN:
    kan = KAN(**SMALL)
    kan.fit(tiny_split.train, None, Trainer(max_epochs=2, seed=0))
    return kan


def _held_out_events(split: Split, positive: bool = True) -> list[OnlineEvent]:
    task = split.validation_task()
    return [
        OnlineEvent(h.items, int(task.targets[r].indices[0]), 0.0, positive)
        for r, h in enumerate(task.histories)
    ]


@pytest.mark.parametrize(("optimizer", "lr"), [("sgd", MAX_LR), ("adam", 0.01)])
def test_the_guard_rolls_back_a_poisoned_batch(
    fitted_kan: KAN,
    tiny_split: Split,
    caplog: pytest.LogCaptureFixture,
    optimizer: str,
    lr: float,
) -> None:
    learner = OnlineLearner(
        fitted_kan, guard_task=tiny_split.validation_task(), update_tables=False,
        guard_every=1, optimizer=optimizer, lr=lr, steps=20, max_grad_norm=None,
        guard_margin=0.05,
    )  # fmt: skip
    before = fitted_kan.get_state()
    rng = np.random.default_rng(0)
    # inverted labels: the items the users did choose become negatives,
    # random items positives
    poison = _held_out_events(tiny_split, positive=False)
    poison += [
        OnlineEvent(e.history, int(rng.integers(fitted_kan.n_items)), 0.0)
        for e in poison
    ]
    with caplog.at_level(logging.WARNING, logger="recommendations.engine.online"):
        report = learner.observe(poison)
    assert report.rolled_back and not report.published
    assert report.guard is not None and report.guard.ndcg < report.guard.threshold
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "rolled back" in warnings[0].getMessage()
    after = fitted_kan.get_state()
    assert set(after) == set(before)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)
    assert learner.version == 0 and learner.rollbacks == 1


def test_a_useful_batch_is_kept_and_improves_the_held_out_metric() -> None:
    syn = generate(
        users=150, items=60, interactions=3000, clusters=4, chain_probability=0.9,
        chain_length=6, seed=5,
    )  # fmt: skip
    split = leave_one_out(syn.interactions())
    kan = KAN(samples_per_epoch=64, negatives=4, svd_dim=8)  # barely trained
    kan.fit(split.train, None, Trainer(max_epochs=1, seed=0))
    test = split.test_task()
    start = validation_ndcg(kan, test)
    learner = OnlineLearner(
        kan, guard_task=split.validation_task(), update_tables=False,
        guard_every=1, optimizer="sgd", lr=0.05, replay=0, negatives=16,
    )  # fmt: skip
    # the training sequences' (prefix -> next item) events: true signal
    train = split.train
    events = stream_events(train, np.diff(np.r_[-1, train.user_index]) == 0)
    rng = np.random.default_rng(0)
    events = [events[i] for i in rng.permutation(len(events))[:1500]]
    reports = [learner.observe(events[s : s + 100]) for s in range(0, 1500, 100)]
    assert all(r.guard is not None for r in reports)
    assert not any(r.rolled_back for r in reports)
    assert learner.version == len(reports)
    assert validation_ndcg(kan, test) > start + 0.02


def test_snapshot_restore_and_resume(fitted_kan: KAN, tiny_split: Split) -> None:
    learner = OnlineLearner(fitted_kan, guard_every=1000, lr=0.05)
    snap = learner.snapshot()
    events = _held_out_events(tiny_split)
    learner.observe(events[:50])
    changed = fitted_kan.get_state()
    assert any(not np.array_equal(changed[k], v) for k, v in snap.model_state.items())
    later = learner.snapshot()
    learner.restore(snap)
    for key, value in snap.model_state.items():
        np.testing.assert_array_equal(fitted_kan.get_state()[key], value)
    # a learner resumed from a later snapshot continues identically
    learner.restore(later)
    twin = KAN(fitted_kan.config)
    twin.items, twin.n_users = fitted_kan.items, fitted_kan.n_users
    twin.set_state(dict(later.model_state))
    resumed = OnlineLearner(
        twin, learner.config, table_state=later.table_state, update_weights=False
    )
    learner_tables = OnlineLearner(
        fitted_kan, learner.config, table_state=later.table_state,
        update_weights=False,
    )  # fmt: skip
    resumed.observe(events[50:])
    learner_tables.observe(events[50:])
    for key in ("log_pop", "recent_log_pop", "cooc_data", "trans_data"):
        np.testing.assert_array_equal(twin.tables[key], fitted_kan.tables[key])


def test_config_caps_the_learning_rate() -> None:
    with pytest.raises(ValueError):
        OnlineConfig(lr=MAX_LR * 2)
    with pytest.raises(ValueError):
        OnlineConfig(no_such_option=1)


# ------------------------------------------------------------- prequential
def test_prequential_runs_the_three_variants_on_a_tiny_stream() -> None:
    data = generate(users=80, items=40, interactions=1600, seed=2).interactions()

    def factory(train: Interactions) -> KAN:
        kan = KAN(**SMALL)
        kan.fit(train, None, Trainer(max_epochs=1, seed=0))
        return kan

    cfg = PrequentialConfig(batch_size=40, predict_sample=150, guard_users=20)
    result = run_prequential(
        data, factory, cfg, OnlineConfig(guard_every=2, guard_size=20)
    )
    summary = result.summary()
    assert set(summary["variants"]) == {"frozen", "tables", "tables_sgd"}
    assert summary["predicted_events"] == 150
    assert summary["stream_events"] == result.stream_events > 150
    for name, v in summary["variants"].items():
        assert 0 <= v["ndcg@10"] <= v["hr@10"] <= 1, name
    sgd = summary["variants"]["tables_sgd"]
    assert sgd["guards"] >= 1 and sgd["update_events_per_s"] > 0
    assert summary["variants"]["frozen"]["update_events_per_s"] is None
    cmp = summary["comparisons"]["tables_sgd - frozen"]["ndcg"]
    assert cmp["low"] <= cmp["mean_diff"] <= cmp["high"]
    assert cmp["ratio_low"] <= cmp["ratio"] <= cmp["ratio_high"]


# ---------------------------------------------------------------- lightgcn
def test_lightgcn_user_vector_reproduces_the_scores(tiny_split: Split) -> None:
    model = LightGCN(dim=16, layers=2, batch_size=512, history_decay=0.1)
    model.fit(tiny_split.train, None, Trainer(max_epochs=2, seed=0))
    items = model.item_embeddings()
    assert items is not None
    items = items / np.linalg.norm(items, axis=1, keepdims=True)
    for history in tiny_split.test_task().histories[:3]:
        user = lightgcn_user_vector(model, history)
        np.testing.assert_allclose(
            items @ user, model.score([history])[0], rtol=1e-4, atol=1e-5
        )
