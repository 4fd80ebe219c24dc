"""Ensemble weighting and member-inclusion variants on already trained members.

Loads an ensemble saved by ``python -m recommendations.engine ablation ...
--save-ensemble DIR`` (its members were trained on the leave-one-out split of
``--data`` with ``--ties``), trains the cheap extra members asked for
(``--extra ease``), scores every member once on the validation and the test
task, and compares weight choices made on validation only:

- ``dr`` / ``ndcg``: the ablation's two objectives over the given members;
- ``dr joint``: DR with the weights searched under every popularity
  correction (``correction_search="joint"``) instead of at ``beta = 0``;
- ``valid-top``: members whose own validation NDCG@10 is at least
  ``--keep`` x the best member's (member inclusion decided on validation),
  then DR.

Test NDCG@10, long-tail share, and the paired bootstrap against the best
single member (by mean test NDCG@10, as the ablation report does); the
per-user test NDCG@10 of every member and variant go to
``<out>.per_user.npz``::

    APEX_TORCH_THREADS=1 python benchmarks/ensemble_variants_bench.py \\
        --data /work/shared/data/ml-100k --ensemble /tmp/ens --extra ease \\
        --out /tmp/variants.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("APEX_TORCH_THREADS", "1")

from recommendations.engine.data.loading import load_data  # noqa: E402
from recommendations.engine.data.splits import make_split  # noqa: E402
from recommendations.engine.ensemble.selection import (  # noqa: E402
    BlendData,
    select_weights,
)
from recommendations.engine.evaluation.ablation import (  # noqa: E402
    _evaluate_matrix,
    _score_all,
)
from recommendations.engine.evaluation.stats import paired_bootstrap  # noqa: E402
from recommendations.engine.models.base import Recommender  # noqa: E402
from recommendations.engine.models.registry import get_model_class  # noqa: E402
from recommendations.engine.training.profiles import (  # noqa: E402
    model_config,
    trainer_config,
)
from recommendations.engine.training.trainer import Trainer  # noqa: E402

logger = logging.getLogger("ensemble_variants_bench")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--ensemble", required=True, metavar="DIR")
    parser.add_argument("--ties", default="random")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--extra", default="", help="members to train here")
    parser.add_argument("--keep", type=float, default=0.8)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    torch.set_num_threads(int(os.environ["APEX_TORCH_THREADS"]))
    started = time.perf_counter()
    data = load_data(args.data, seed=args.seed, ties=args.ties)
    split = make_split(data, "loo")
    valid, test = split.validation_task(), split.test_task()
    counts = split.train.item_counts()
    ensemble = Recommender.load(args.ensemble)
    members: dict[str, Any] = dict(ensemble.members)  # type: ignore[attr-defined]
    for name in [m for m in args.extra.split(",") if m]:
        cls = get_model_class(name)
        model = cls(model_config(cls, "quick"))
        model.fit(
            split.train,
            valid,
            Trainer(trainer_config(cls, "quick", seed=args.seed)),
        )
        members[name] = model
    raw_valid, raw_test, single = {}, {}, {}
    for name, model in members.items():
        raw_valid[name], _ = _score_all(model, valid)
        raw_test[name], _ = _score_all(model, test)
        v = _evaluate_matrix(raw_valid[name], valid, split, args.seed)
        t = _evaluate_matrix(raw_test[name], test, split, args.seed)
        single[name] = {
            "valid_ndcg@10": float(np.nanmean(v.full["ndcg@10"])),
            "test_ndcg@10": float(np.nanmean(t.full["ndcg@10"])),
            "long_tail": t.beyond.get("long_tail_share"),
            "_per_user": t.full["ndcg@10"],
        }
        logger.info(
            "%s: %s", name, {k: v for k, v in single[name].items() if k[0] != "_"}
        )
    base = list(ensemble.config.members)  # type: ignore[attr-defined]
    best_valid = max(s["valid_ndcg@10"] for s in single.values())
    kept = [n for n in members if single[n]["valid_ndcg@10"] >= args.keep * best_valid]
    variants = {"dr": (base, "dr"), "ndcg": (base, "ndcg"), "dr joint": (base, "dr")}
    if args.extra:
        variants |= {
            "dr +extra": ([*base, *args.extra.split(",")], "dr"),
            "ndcg +extra": ([*base, *args.extra.split(",")], "ndcg"),
        }
    variants |= {"valid-top dr": (kept, "dr"), "valid-top ndcg": (kept, "ndcg")}
    best = max(single, key=lambda n: single[n]["test_ndcg@10"])
    out: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "data": {**data.describe(), "splits": split.sizes()},
        "single": {
            n: {k: v for k, v in s.items() if k[0] != "_"} for n, s in single.items()
        },
        "best_single": best,
        "kept_by_validation": kept,
        "variants": {},
    }
    per_user_out = {f"single/{n}": s["_per_user"] for n, s in single.items()}
    for label, (names, objective) in variants.items():
        sel = select_weights(
            {n: raw_valid[n] for n in names}, valid, counts, objective=objective,
            samples=args.samples, seed=args.seed, clip=100.0,
            correction_search="joint" if label.endswith("joint") else "after",
        )  # fmt: skip
        blend = BlendData.build(
            {n: raw_test[n] for n in names}, test, counts, method=sel.normalisation
        )
        w = np.array([sel.weights[n] for n in names])
        result = _evaluate_matrix(
            blend.blended(w, sel.popularity_correction), test, split, args.seed
        )
        per_user = result.full["ndcg@10"]
        per_user_out[f"variant/{label}"] = per_user
        test_ndcg = float(np.nanmean(per_user))
        out["variants"][label] = {
            "members": names,
            "weights": {n: round(float(x), 3) for n, x in sel.weights.items()},
            "normalisation": sel.normalisation,
            "beta": sel.popularity_correction,
            "selection_seconds": round(sel.seconds, 1),
            "valid_value": sel.value,
            "test_ndcg@10": test_ndcg,
            "long_tail": result.beyond.get("long_tail_share"),
            "ratio_vs_best_single": test_ndcg / single[best]["test_ndcg@10"],
            "paired_vs_best_single": paired_bootstrap(
                per_user, single[best]["_per_user"], seed=0
            ),
        }
        logger.info("%s: %s", label, out["variants"][label])
    out["seconds"] = round(time.perf_counter() - started, 1)
    Path(args.out).write_text(json.dumps(out, indent=1, default=float))
    np.savez_compressed(Path(args.out).with_suffix(".per_user.npz"), **per_user_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
