"""Benchmark serving tier 2: PyTorch CPU vs ONNX Runtime FP32 vs ONNX Runtime INT8.

On ML-100K (temporal leave-one-out), each neural model is trained briefly
(``--budget`` seconds, its ``quick`` profile config, one torch thread), saved
with both ONNX graphs, then measured per backend:

- single-request latency (one user per call, users cycled from the validation
  histories): 300 random candidates and the full catalog, median and p99
  over ``--calls`` calls; torch and ONNX Runtime both on one thread;
- cold load time of the ONNX Runtime session and the ``.onnx`` file sizes;
- fidelity vs PyTorch on every validation user: max |score difference| and
  mean overlap of the served top 10 (seen items excluded);
- validation NDCG@10 (full ranking) for each backend.

Speed and file size do not depend on how well a model converged, so the short
training is enough for the speed columns; the NDCG columns compare backends
with each other, not with the models' tuned quality (see BENCHMARKS.md).

    APEX_TORCH_THREADS=1 python benchmarks/onnx_bench.py [--models sasrec,...]
        [--budget 40] [--calls 200] [--out /tmp/bench_onnx.md]

The last column suggests INT8 by the rule in ``decide``; the decision table
lives in ``recommendations/engine/onnx/quantize.py`` (``QUANTIZE``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommendations.engine.data.loading import load_data  # noqa: E402
from recommendations.engine.data.splits import EvalTask, make_split  # noqa: E402
from recommendations.engine.evaluation.metrics import (  # noqa: E402
    metrics_from_ranks,
    target_ranks,
)
from recommendations.engine.models import Recommender, get_model_class  # noqa: E402
from recommendations.engine.onnx.scorer import (  # noqa: E402
    FP32_FILE,
    INT8_FILE,
    OnnxScorer,
    save_for_serving,
)
from recommendations.engine.training import Trainer  # noqa: E402

MODELS = "sasrec,lightgcn,kan,neural_ode,quantum_fluid,hyperbolic,diffusion"
BACKENDS = ("torch", "fp32", "int8")


def latency(fn: Callable[[int], Any], calls: int) -> tuple[float, float]:
    """Median and p99 milliseconds of ``fn(i)`` over ``calls`` calls (3 warm-ups)."""
    for i in range(3):
        fn(i)
    times = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        fn(i)
        times[i] = time.perf_counter() - start
    return float(np.median(times) * 1e3), float(np.percentile(times, 99) * 1e3)


def fidelity(
    scorers: dict[str, Any], task: EvalTask, batch: int = 256
) -> dict[str, float]:
    """NDCG@10 per backend; max |diff| and top-10 overlap of the ONNX ones."""
    ndcg = dict.fromkeys(scorers, 0.0)
    diff = {"fp32": 0.0, "int8": 0.0}
    overlap = {"fp32": 0.0, "int8": 0.0}
    for start in range(0, len(task), batch):
        sl = slice(start, min(start + batch, len(task)))
        histories, exclude = task.histories[sl], task.exclude[sl].toarray() > 0
        scores = {k: s.score(histories) for k, s in scorers.items()}
        for k, s in scores.items():
            rows, ranks, _ = target_ranks(s, task.targets[sl], task.exclude[sl])
            ndcg[k] += float(
                np.nansum(metrics_from_ranks(rows, ranks, len(s), (10,))["ndcg@10"])
            )
        ref_top = top10(scores["torch"], exclude)
        for k in diff:
            diff[k] = max(diff[k], float(np.abs(scores[k] - scores["torch"]).max()))
            top = top10(scores[k], exclude)
            overlap[k] += sum(
                len(set(a) & set(b)) / 10 for a, b in zip(ref_top, top, strict=True)
            )
    n = len(task)
    out = {f"ndcg_{k}": v / n for k, v in ndcg.items()}
    out.update({f"diff_{k}": v for k, v in diff.items()})
    out.update({f"overlap_{k}": v / n for k, v in overlap.items()})
    return out


def top10(scores: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    masked = np.where(exclude, -np.inf, scores.astype(np.float64))
    return np.argsort(-masked, axis=1, kind="stable")[:, :10]


def decide(row: dict[str, Any]) -> tuple[bool, str]:
    """INT8 pays if it is >= 10 % faster (either request shape) or saves >= 1 MB,
    while keeping top-10 overlap >= 0.9 and NDCG@10 within 1 % of FP32."""
    faster = any(
        row[f"{shape}_int8_p50"] <= 0.9 * row[f"{shape}_fp32_p50"]
        for shape in ("c300", "full")
    )
    smaller = row["size_fp32"] - row["size_int8"] >= 1_000_000
    faithful = (
        row["overlap_int8"] >= 0.9
        and row["ndcg_int8"] >= 0.99 * row["ndcg_fp32"] - 1e-4
    )
    why = f"faster={faster} smaller={smaller} faithful={faithful}"
    return (faster or smaller) and faithful, why


def bench_model(
    name: str, data: Any, split: Any, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    cls = get_model_class(name)
    config = cls.Config.for_profile("quick")
    model: Recommender = cls(config)
    valid = split.validation_task()
    started = time.perf_counter()
    report = model.fit(
        split.train,
        valid,
        Trainer(max_epochs=50, time_budget_s=args.budget, seed=0, threads=1),
    )
    train_s = time.perf_counter() - started
    folder = work / name
    started = time.perf_counter()
    save_for_serving(model, folder, int8=True)
    export_s = time.perf_counter() - started
    loads = {}
    scorers: dict[str, Any] = {"torch": model}
    for precision in ("fp32", "int8"):
        started = time.perf_counter()
        scorers[precision] = OnnxScorer(folder, precision=precision, threads=1)
        loads[precision] = time.perf_counter() - started
    rng = np.random.default_rng(0)
    users = [h for h in valid.histories if len(h.items)][: args.calls]
    cands = [rng.choice(model.n_items, 300, replace=False) for _ in users]
    row: dict[str, Any] = {
        "model": name,
        "epochs": report.epochs,
        "train_s": train_s,
        "export_s": export_s,
        "load_fp32": loads["fp32"],
        "load_int8": loads["int8"],
        "size_fp32": (folder / FP32_FILE).stat().st_size,
        "size_int8": (folder / INT8_FILE).stat().st_size,
    }
    n = len(users)
    for backend, scorer in scorers.items():
        row[f"c300_{backend}_p50"], row[f"c300_{backend}_p99"] = latency(
            lambda i, s=scorer: s.score([users[i % n]], cands[i % n]), args.calls
        )
        row[f"full_{backend}_p50"], row[f"full_{backend}_p99"] = latency(
            lambda i, s=scorer: s.score([users[i % n]]), args.calls
        )
    row.update(fidelity(scorers, valid))
    row["int8"], row["why"] = decide(row)
    print(f"{name}: {row}", flush=True)
    return row


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    def ms(r: dict[str, Any], shape: str, b: str) -> str:
        return f"{r[f'{shape}_{b}_p50']:.2f} / {r[f'{shape}_{b}_p99']:.2f}"

    lines = [header, ""]
    lines += [
        "Latency, one user per call, ms median / p99 (torch | ORT FP32 | ORT INT8):",
        "",
        "| model | 300 candidates | full catalog |",
        "|---|---|---|",
    ]
    for r in rows:
        c300 = " \\| ".join(ms(r, "c300", b) for b in BACKENDS)
        full = " \\| ".join(ms(r, "full", b) for b in BACKENDS)
        lines.append(f"| {r['model']} | {c300} | {full} |")
    lines += [
        "",
        "Size, load, fidelity vs PyTorch (all validation users) and validation "
        "NDCG@10:",
        "",
        "| model | epochs (train s) | export s | .onnx FP32 / INT8 KB | ORT load s "
        "FP32 / INT8 | max abs diff FP32 / INT8 | top-10 overlap FP32 / INT8 | "
        "NDCG@10 torch / FP32 / INT8 | INT8? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['epochs']} ({r['train_s']:.0f}) "
            f"| {r['export_s']:.1f} "
            f"| {r['size_fp32'] / 1024:.0f} / {r['size_int8'] / 1024:.0f} "
            f"| {r['load_fp32']:.2f} / {r['load_int8']:.2f} "
            f"| {r['diff_fp32']:.1e} / {r['diff_int8']:.1e} "
            f"| {r['overlap_fp32']:.3f} / {r['overlap_int8']:.3f} "
            f"| {r['ndcg_torch']:.4f} / {r['ndcg_fp32']:.4f} / {r['ndcg_int8']:.4f} "
            f"| {'yes' if r['int8'] else 'no'} ({r['why']}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data/ml-100k")
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--budget", type=float, default=40.0)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--out", default="/tmp/bench_onnx.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("APEX_TORCH_THREADS", "1")
    import onnxruntime
    import torch

    torch.set_num_threads(1)
    data = load_data(args.data)
    split = make_split(data, "loo")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows.append(bench_model(name, data, split, args, Path(tmp)))
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    header = (
        f"## ONNX tier benchmark ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)\n\n"
        f"Command: `APEX_TORCH_THREADS=1 python {' '.join(sys.argv)}`  \n"
        f"Machine: {cpu}, {os.cpu_count()} cores (shared with other work), "
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"1 intra-op thread for torch and ORT.  \n"
        f"Data: {args.data}, temporal leave-one-out, validation users "
        f"{len(split.validation_task())}; models trained {args.budget:.0f} s each "
        f"(quick profile configs; speed and size do not depend on convergence)."
    )
    text = markdown(rows, header)
    print(text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
