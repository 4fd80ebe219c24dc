"""The command line end to end on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recommendations.engine.cli import main


@pytest.mark.slow
def test_evaluate_writes_results_and_score_dumps(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    dump = tmp_path / "scores"
    code = main([
        "evaluate", "--data", "synthetic",
        "--models", "pop,ease,itemknn,sasrec,lightgcn",
        "--protocol", "loo", "--seeds", "1,2", "--profile", "quick", "--device", "cpu",
        "--out", str(out), "--dump-scores", str(dump),
    ])  # fmt: skip
    assert code == 0
    results = json.loads(out.read_text())
    assert results["dataset"]["users"] == 200 and results["protocol"]["split"] == "loo"
    assert set(results["dataset"]["splits"]) == {"train", "valid", "test"}
    for name in ("pop", "ease", "itemknn", "sasrec", "lightgcn"):
        entry = results["models"][name]
        ndcg = entry["over_seeds"]["full"]["ndcg@10"]
        assert 0 <= ndcg["mean"] <= 1 and len(ndcg["per_seed"]) == 2
        assert "ndcg@10" in entry["over_seeds"]["sampled"]
        assert (
            entry["runs"][0]["full"]["hr@10"]["low"]
            <= entry["runs"][0]["full"]["hr@10"]["mean"]
        )
        assert entry["over_seeds"]["train_seconds"]["mean"] >= 0
        assert "hyperparameters" in entry
        scores = np.load(dump / name / "scores.npy")
        users = (dump / name / "users.txt").read_text().split()
        items = (dump / name / "items.txt").read_text().split()
        assert scores.shape == (len(users), len(items)) and scores.dtype == np.float32
    assert results["models"]["ease"]["runs"][0]["fit"]["l2"] > 0
    assert "ease" in results["paired_vs_pop_ndcg@10"]
    assert main(["report", str(out)]) == 0


def test_temporal_protocol_and_csv_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["user_id,item_id,rating,timestamp"] + [
        f"{u},{i},4,{t}"
        for u in range(30)
        for t, i in enumerate(rng.choice(40, 12, replace=False))
    ]
    csv = tmp_path / "events.csv"
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "r.json"
    argv = ["evaluate", "--data", str(csv), "--models", "pop,itemknn",
            "--protocol", "temporal", "--seeds", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert json.loads(out.read_text())["protocol"]["split"] == "temporal"


def test_unknown_model_fails_with_a_clear_message(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    code = main(["evaluate", "--data", "synthetic", "--models", "pop,nope",
                 "--out", str(tmp_path / "r.json")])  # fmt: skip
    assert code == 2
    assert "unknown model 'nope'" in caplog.text
