"""What logging the candidates' member scores costs a served list (issue 16).

A sampled share of user lists (``APEX_IMPRESSIONS_CANDIDATES_SHARE``) is
served with ``member_scores=True`` so that ``debias --from-impressions`` can
replay other blends. This loads one artifact version with the real
``ServingEngine`` on a tier and serves the same histories with and without
``member_scores``, interleaved in one run (A B, B A, ...), and prints the
p50 / p90 of ``engine.recommend`` for each, the difference of the p50s, and
the size of the logged ``candidates`` JSON. Histories: ``--users`` draws of
``--history`` items, each item drawn with probability proportional to its
training popularity (a realistic mix of head and tail), seeded.

    APEX_TORCH_THREADS=1 OMP_NUM_THREADS=1 flock /tmp/apex-bench.lock \\
        python benchmarks/member_scores_bench.py --bundle <artifacts>/<version> --tier 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", required=True, help="an artifact version folder")
    parser.add_argument("--tier", type=int, default=2, choices=(1, 2))
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from recommendations.engine.serving import ServingEngine

    engine = ServingEngine.load(args.bundle, args.tier, device="cpu")
    rng = np.random.default_rng(args.seed)
    pop = np.asarray(engine.popularity, dtype=np.float64) + 1.0
    p = pop / pop.sum()
    histories = [
        [
            engine.item_ids[int(i)]
            for i in rng.choice(len(p), size=args.history, replace=False, p=p)
        ]
        for _ in range(args.users)
    ]
    for h in histories[:5]:  # warm-up (ONNX sessions, caches)
        engine.recommend(h, n=args.n)
        engine.recommend(h, n=args.n, member_scores=True)

    times: dict[bool, list[float]] = {False: [], True: []}
    sizes: list[int] = []
    members: set[str] = set()
    candidates_n: list[int] = []
    for k, history in enumerate(histories):
        order = (False, True) if k % 2 == 0 else (True, False)
        for flag in order:
            started = time.perf_counter()
            served = engine.recommend(history, n=args.n, member_scores=flag)
            times[flag].append(1e3 * (time.perf_counter() - started))
            if flag and served.candidates:
                sizes.append(len(json.dumps(served.candidates, separators=(",", ":"))))
                members |= set(served.candidates["members"])
                candidates_n.append(len(served.candidates["item_ids"]))

    def q(values: list[float], quantile: float) -> float:
        return float(np.quantile(values, quantile))

    base, logged = times[False], times[True]
    print(
        f"bundle {Path(args.bundle).name}, tier {args.tier}, {args.users} histories "
        f"of {args.history}, n={args.n}; {platform.node()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    for name, values in (("without", base), ("with", logged)):
        print(
            f"{name} member scores: p50 {q(values, 0.5):.2f} ms, "
            f"p90 {q(values, 0.9):.2f} ms"
        )
    paired = statistics.median(b - a for a, b in zip(base, logged, strict=True))
    print(
        f"cost: {q(logged, 0.5) - q(base, 0.5):+.2f} ms at p50 (median of paired "
        f"differences {paired:+.2f} ms)"
    )
    if sizes:
        print(
            f"logged: {len(sizes)} lists, members {sorted(members)}, candidates "
            f"median {statistics.median(candidates_n):.0f}, JSON median "
            f"{statistics.median(sizes) / 1024:.1f} KB (max {max(sizes) / 1024:.1f} KB)"
        )
    else:
        print("logged: nothing (the bundle has no ensemble on this tier)")


if __name__ == "__main__":
    main()
