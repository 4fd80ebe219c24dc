"""Off-policy evaluation, A/B stopping and exploration cost on the simulator (issue 16).

Three measurements on :mod:`recommendations.engine.bandits.simulator`
(position-based clicks, ``theta_k = 1 / (k + 1)``; slates of 10 out of 50
candidates), for two populations of simulated users: ``synthetic`` (the
engine's planted generator: 500 users, 300 items) and ``ml100k`` (attraction
from a rank-32 SVD fitted to ML-100K, mean click rate 5 %).

1. **OPE accuracy** (``ope``): a logging policy (blend ``[0.3, 0.4, 0.3]``
   of the members truth+noise / popularity / noise, epsilon-greedy with
   ``--epsilon``) logs ``--slates`` slates; for each of six candidate
   deterministic blend policies the IPS, SNIPS, DR and Switch-DR estimates are
   compared with the policy's true value (exact expected clicks per slate
   over all users, and a Monte-Carlo on-policy run of ``--slates`` slates as
   a check), over ``--runs`` independent logs: mean relative error
   ``|est - true| / true`` and MSE.
2. **A/B stopping** (``ab``): each impression comes from a new visitor
   (id hashed 50/50 by GrowthBook's hash; taste drawn from the population's
   users, so both arms face the same population); variant A serves a good
   blend (``truth+pop``), B a deliberately worse one (the ``logging`` blend,
   30 % noise); after every ``--look`` impressions the mSPRT rule (alpha
   0.05, tau 0.02 on slate click-through) looks; impressions until it stops,
   how often it picks the worse one, and an A/A run's false-positive rate —
   over ``--ab-runs`` runs.
3. **Exploration cost** (``explore``): NDCG@10 (attraction as graded
   relevance, ideal = the 10 most attractive candidates) and clicks per slate
   of the served lists against epsilon (and Thompson's scale).

    flock /tmp/apex-bench.lock python benchmarks/ope_bench.py \\
        [--parts ope,ab,explore] [--populations synthetic,ml100k] \\
        [--runs 20] [--slates 20000] [--out results.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommendations.engine.bandits.assignment import assign  # noqa: E402
from recommendations.engine.bandits.blend import (  # noqa: E402
    RewardModel,
    evaluate_weights,
    normalised,
)
from recommendations.engine.bandits.exploration import ExplorationConfig  # noqa: E402
from recommendations.engine.bandits.sequential import compare  # noqa: E402
from recommendations.engine.bandits.simulator import (  # noqa: E402
    Simulator,
    fitted_click_model,
    synthetic_click_model,
)
from recommendations.engine.data.loading import load_data  # noqa: E402
from recommendations.engine.data.synthetic import generate  # noqa: E402

logger = logging.getLogger("ope_bench")

LOGGING = np.array([0.3, 0.4, 0.3])
CANDIDATES = {
    "truth": [1.0, 0.0, 0.0],
    "truth+pop": [0.6, 0.4, 0.0],
    "logging": [0.3, 0.4, 0.3],
    "pop": [0.0, 1.0, 0.0],
    "pop+noise": [0.0, 0.5, 0.5],
    "noise-heavy": [0.2, 0.1, 0.7],
}
ESTIMATORS = ("ips", "snips", "dr", "switch_dr")


def population(name: str, seed: int, ml_path: str) -> Simulator:
    if name == "synthetic":
        data = generate(users=500, items=300, interactions=15000, seed=seed)
        model = synthetic_click_model(data, k=10)
    elif name == "ml100k":
        model = fitted_click_model(load_data(ml_path, seed=seed), factors=32, k=10)
    else:
        raise SystemExit(f"unknown population {name}")
    return Simulator.with_members(
        model, noise=0.7, seed=seed, n_candidates=50, slate_size=10
    )


def ope(sim: Simulator, args: argparse.Namespace) -> dict[str, Any]:
    truth = {n: sim.true_value(np.array(w)) for n, w in CANDIDATES.items()}
    rng = np.random.default_rng(args.seed + 1)
    on_policy = {
        n: sim.on_policy(np.array(w), args.slates, rng) for n, w in CANDIDATES.items()
    }
    explore = ExplorationConfig(kind="epsilon_greedy", epsilon=args.epsilon)
    est: dict[str, dict[str, list[float]]] = {
        n: {e: [] for e in ESTIMATORS} for n in CANDIDATES
    }
    started = time.monotonic()
    for run in range(args.runs):
        rng = np.random.default_rng(1000 + run)
        batch, _ = sim.log(LOGGING, explore, args.slates, rng)
        z = normalised(batch)
        model = RewardModel(batch, z)
        for name, w in CANDIDATES.items():
            out = evaluate_weights(
                batch, np.array(w), z=z, reward_model=model, tau=args.tau
            )
            for e in ESTIMATORS:
                est[name][e].append(out[e].value)
        eta = (time.monotonic() - started) / (run + 1) * (args.runs - run - 1)
        logger.info("ope run %d/%d, ETA %.0fs", run + 1, args.runs, eta)
    rows = {}
    for name in CANDIDATES:
        t = truth[name]
        rows[name] = {
            "true": t,
            "on_policy": on_policy[name],
            **{
                e: {
                    "mean": float(np.mean(v)),
                    "rel_error": float(np.mean(np.abs(np.array(v) - t)) / t),
                    "rel_bias": float((np.mean(v) - t) / t),
                    "mse": float(np.mean((np.array(v) - t) ** 2)),
                }
                for e, v in est[name].items()
            },
        }
    summary = {
        e: {
            "mean_rel_error": float(np.mean([rows[n][e]["rel_error"] for n in rows])),
            "max_rel_error": float(np.max([rows[n][e]["rel_error"] for n in rows])),
            "mean_mse": float(np.mean([rows[n][e]["mse"] for n in rows])),
        }
        for e in ESTIMATORS
    }
    return {"policies": rows, "summary": summary}


def _slate_ctr(sim: Simulator, weights: np.ndarray) -> np.ndarray:
    """Per user, P(at least one click) on the deterministic blend's slate."""
    out = np.zeros(sim.n_users)
    for u in range(sim.n_users):
        items = sim.candidates[u, sim.greedy(u, weights)]
        p = sim.model.examination[: len(items)] * sim.model.attraction[u, items]
        out[u] = 1.0 - np.prod(1.0 - p)
    return out


def ab(sim: Simulator, args: argparse.Namespace) -> dict[str, Any]:
    good, bad = np.array(CANDIDATES["truth+pop"]), np.array(CANDIDATES["logging"])
    ctr = {"good": _slate_ctr(sim, good), "bad": _slate_ctr(sim, bad)}
    results: dict[str, Any] = {
        "true_ctr": {k: float(v.mean()) for k, v in ctr.items()},
    }
    for label, arms in (("good_vs_bad", ("good", "bad")), ("a_a", ("good", "good"))):
        stops, wrong, undecided = [], 0, 0
        for run in range(args.ab_runs):
            rng = np.random.default_rng(5000 + run)
            seed = f"ab-{label}-{run}"
            sums = np.zeros(2)
            counts = np.zeros(2)
            decision, n = "continue", 0
            while n < args.ab_max:
                u = rng.integers(0, sim.n_users, args.look)  # each visitor's taste
                a = np.array(
                    [assign(seed, str(n + i), [0.5, 0.5]) for i in range(args.look)]
                )
                p = np.where(a == 0, ctr[arms[0]][u], ctr[arms[1]][u])
                x = rng.random(args.look) < p
                for arm in (0, 1):
                    sums[arm] += x[a == arm].sum()
                    counts[arm] += (a == arm).sum()
                n += args.look
                m = sums / counts
                v = m * (1 - m) * counts / np.maximum(counts - 1, 1)  # Bernoulli
                r = compare(int(counts[0]), m[0], v[0], int(counts[1]), m[1], v[1])
                if r.decision != "continue":
                    decision = r.decision
                    break
            if decision == "continue":
                undecided += 1
            else:
                stops.append(n)
                if label == "a_a" or decision == "B":  # B is the worse arm
                    wrong += 1
        q = np.percentile(stops, [10, 50, 90]).tolist() if stops else [None] * 3
        results[label] = {
            "runs": args.ab_runs,
            "decided": len(stops),
            "wrong_or_false_positive": wrong,
            "undecided_at_max": undecided,
            "impressions_p10_p50_p90": q,
        }
        logger.info("ab %s: %s", label, results[label])
    return results


def exploration_cost(sim: Simulator, args: argparse.Namespace) -> dict[str, Any]:
    w = np.array(CANDIDATES["truth+pop"])
    configs = [("greedy", ExplorationConfig())]
    configs += [
        (f"eps={e}", ExplorationConfig(kind="epsilon_greedy", epsilon=e))
        for e in (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
    ]
    configs += [
        (f"thompson sd={s}", ExplorationConfig(kind="thompson", thompson_scale=s,
                                               thompson_samples=64))
        for s in (0.05, 0.1, 0.2)
    ]  # fmt: skip
    out = {}
    for label, cfg in configs:
        rng = np.random.default_rng(7)
        ndcg, clicks, min_prop = [], [], 1.0
        for u in rng.integers(0, sim.n_users, args.explore_slates):
            shown, prop = sim.serve(int(u), w, cfg, rng)
            ndcg.append(sim.ndcg_at_k(int(u), shown))
            clicks.append(sim.model.expected(int(u), sim.candidates[u, shown]))
            min_prop = min(min_prop, float(prop.min()))
        out[label] = {
            "ndcg@10": float(np.mean(ndcg)),
            "ndcg_ci95": float(1.96 * np.std(ndcg) / np.sqrt(len(ndcg))),
            "clicks_per_slate": float(np.mean(clicks)),
            "min_propensity": min_prop,
        }
        logger.info("explore %s: %s", label, out[label])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default="ope,ab,explore")
    p.add_argument("--populations", default="synthetic,ml100k")
    p.add_argument("--ml-path", default=str(ROOT.parent / "shared/data/ml-100k"))
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--slates", type=int, default=20_000)
    p.add_argument("--epsilon", type=float, default=0.2)
    p.add_argument("--tau", type=float, default=100.0, help="Switch-DR threshold")
    p.add_argument("--ab-runs", type=int, default=100)
    p.add_argument("--ab-max", type=int, default=400_000)
    p.add_argument("--look", type=int, default=200)
    p.add_argument("--explore-slates", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parts = args.parts.split(",")
    report: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {os.cpu_count()} cpus, load {os.getloadavg()}",
        "args": vars(args),
    }
    for name in args.populations.split(","):
        t0 = time.monotonic()
        sim = population(name, args.seed, args.ml_path)
        section: dict[str, Any] = {}
        if "ope" in parts:
            section["ope"] = ope(sim, args)
            for e, s in section["ope"]["summary"].items():
                print(
                    f"{name} {e:9s} mean rel err {s['mean_rel_error']:.3f}  "
                    f"max {s['max_rel_error']:.3f}  mean MSE {s['mean_mse']:.3g}"
                )
        if "ab" in parts:
            section["ab"] = ab(sim, args)
        if "explore" in parts:
            section["explore"] = exploration_cost(sim, args)
        section["seconds"] = round(time.monotonic() - t0, 1)
        report[name] = section
    report["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
