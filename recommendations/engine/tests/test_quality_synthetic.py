"""Quality floors on planted structure (loose: these are not benchmarks)."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.engine.data import leave_one_out
from recommendations.engine.data.synthetic import generate
from recommendations.engine.evaluation import evaluate
from recommendations.engine.models import create_model
from recommendations.engine.training import Trainer


@pytest.mark.slow
def test_sasrec_recovers_planted_chains_that_popularity_cannot() -> None:
    syn = generate(
        users=200, items=80, interactions=3000, clusters=4, chain_probability=0.9,
        chain_length=8, seed=11,
    )  # fmt: skip
    data = syn.interactions()
    split = leave_one_out(data)
    task = split.test_task()
    # users whose test item is the planted successor of their last history item
    last = np.array([h.items[-1] for h in task.histories])
    target = task.targets.indices
    chained = syn.truth.successor[data.items.ids[last]] == data.items.ids[target]
    assert chained.sum() > 40

    results = {}
    for name, cfg in (
        ("pop", {}),
        ("sasrec", {"hidden": 32, "max_len": 30, "blocks": 1, "dropout": 0.1,
                    "lr": 5e-3, "batch_size": 64}),
    ):  # fmt: skip
        model = create_model(name, **cfg)
        model.fit(
            split.train,
            split.validation_task(),
            Trainer(max_epochs=25, patience=3, seed=0),
        )
        results[name] = evaluate(model, task).full
    sas, pop = (
        results["sasrec"]["hr@5"][chained].mean(),
        results["pop"]["hr@5"][chained].mean(),
    )
    assert sas > 0.6, sas
    assert sas > pop + 0.4, (sas, pop)


@pytest.mark.slow
def test_lightgcn_recovers_planted_taste_clusters() -> None:
    syn = generate(
        users=300, items=300, interactions=4500, clusters=5, chain_probability=0.0,
        drift=0.0, in_cluster=0.95, popularity_exponent=0.5, seed=5,
    )  # fmt: skip
    data = syn.interactions()
    split = leave_one_out(data)
    task = split.test_task()
    home = syn.truth.user_cluster[data.users.ids[task.users]]
    item_cluster = syn.truth.item_cluster[data.items.ids]

    def in_cluster_share(model) -> float:  # noqa: ANN001
        shares = []
        for h, c in zip(task.histories, home, strict=True):
            top, _ = model.recommend(h, k=10)
            shares.append((item_cluster[top] == c).mean())
        return float(np.mean(shares))

    pop = create_model("pop")
    pop.fit(split.train)
    gcn = create_model("lightgcn", dim=32, layers=2, batch_size=512, lr=5e-3)
    gcn.fit(
        split.train, split.validation_task(), Trainer(max_epochs=30, patience=4, seed=0)
    )
    gcn_share, pop_share = in_cluster_share(gcn), in_cluster_share(pop)
    assert gcn_share > 0.8, gcn_share
    assert gcn_share > pop_share + 0.4, (gcn_share, pop_share)
    assert evaluate(gcn, task).mean("ndcg@10") > evaluate(pop, task).mean("ndcg@10")
