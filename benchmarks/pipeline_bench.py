"""Benchmark of the serving pipeline's parts on ML-100K (CPU, one thread).

Measures:

1. FAISS exact (``IndexFlatIP``) vs HNSW recall@100 and single-query latency,
   with truncated-SVD item factors of the binary ML-100K matrix and with
   random Gaussian vectors, plus a larger random catalog where HNSW pays;
2. hyperbolic search: recall@100 of the exact inner-product lift and of the
   tangent-space (``logmap0``) shortcut against exact geodesic distance, on
   synthetic points inside the Poincaré ball;
3. TF-IDF build time and neighbour latency over the ML-100K item text
   (title + genres only: ML-100K has no overviews, people or collections);
4. per-request time of each pipeline stage (median / p99) over every ML-100K
   user (943 requests per setting). The ensemble is *not* in this benchmark:
   the SVD dot product stands in as the ranking scorer (disagreement 0) and
   the item-kNN model of the engine stands in as the sequence source.

Usage::

    python benchmarks/pipeline_bench.py [--data /work/shared/data/ml-100k]
        [--big 50000] [--out /tmp/bench_pipeline.md]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402
import sklearn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recommendations.engine.data.interactions import History  # noqa: E402
from recommendations.engine.data.loading import load_data  # noqa: E402
from recommendations.engine.models.itemknn import ItemKNN  # noqa: E402
from recommendations.engine.pipeline import (  # noqa: E402
    AnnConfig,
    AnnIndex,
    ContentFallbackScorer,
    ContentModel,
    ItemMetadata,
    PoincareAnnIndex,
    Ranker,
    RankingConfig,
    RecommendationPipeline,
    RecommendationRequest,
    Reranker,
    RetrievalConfig,
    Retriever,
    ann_source,
    content_source,
    graph_source,
    popularity_order,
    recall_at_k,
    sequence_source,
)
from recommendations.engine.pipeline.ann import (  # noqa: E402
    exact_top_k,
    lift_items,
    lift_queries,
    logmap0,
    poincare_distance,
)
from recommendations.engine.pipeline.reranking import intra_list_diversity  # noqa: E402

K = 100


def ms(values: list[float]) -> tuple[float, float]:
    """Median and p99 of seconds, in milliseconds."""
    arr = 1e3 * np.asarray(values)
    return float(np.median(arr)), float(np.percentile(arr, 99))


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def ann_rows(name: str, items: np.ndarray, queries: np.ndarray) -> list[str]:
    """Exact vs HNSW (two beams; raw IP and L2 reduction): recall@100 vs exact
    search, build time (one build per index, the beam is a search setting)
    and single-query latency."""
    exact = exact_top_k(queries @ items.T, K)
    rows = []
    for kind, l2, beams in (("exact", False, (0,)), ("hnsw", False, (128, 256)),
                            ("hnsw", True, (128, 256))):  # fmt: skip
        t = time.perf_counter()
        index = AnnIndex.build(items, AnnConfig(kind=kind, l2_reduction=l2))
        build = time.perf_counter() - t
        for ef in beams:
            if kind == "hnsw":
                faiss.downcast_index(index.index).hnsw.efSearch = ef
            got, _ = index.search_batch(queries, K)
            recall = recall_at_k(got, exact)
            lat = timed_each(lambda q, index=index: index.search(q, K), queries)
            p50, p99 = ms(lat)
            label = "IndexFlatIP" if kind == "exact" else f"HNSW M=32 ef={ef}"
            label += ", L2 reduction" if l2 else ""
            rows.append(
                f"| {name} | {len(items)}x{items.shape[1]} | {label} | {recall:.4f} "
                f"| {build:.2f} | {p50:.3f} | {p99:.3f} |"
            )
    return rows


def timed_each(fn: Callable[[np.ndarray], object], queries: np.ndarray) -> list[float]:
    out = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        out.append(time.perf_counter() - t)
    return out


def ball(n: int, d: int, seed: int) -> np.ndarray:
    """Random directions, tangent norm uniform in [0.05, 3]: ball norms up to
    tanh(3) = 0.995, i.e. many points near the boundary, as trained
    hyperbolic embeddings put their long-tail items."""
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal((n, d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return np.tanh(rng.uniform(0.05, 3.0, size=(n, 1))) * direction


def hyperbolic_rows(n: int, d: int) -> list[str]:
    items, users = ball(n, d, 1), ball(200, d, 2)
    exact = np.argsort(poincare_distance(users, items), axis=1)[:, :K]
    rows = []
    for label, kind in (
        ("flat IP (exact)", "exact"),
        ("HNSW, L2 reduction, 3x + rescore", "hnsw"),
    ):
        index = PoincareAnnIndex(items, config=AnnConfig(kind=kind))
        got = np.stack([index.search(u, K)[0] for u in users])
        lat = ms(timed_each(lambda q, index=index: index.search(q, K), users))
        rows.append(
            f"| {n}x{d} | lift + {label} | {recall_at_k(got, exact):.4f} "
            f"| {lat[0]:.3f} |"
        )
    raw = AnnIndex.build(lift_items(items), AnnConfig(kind="hnsw"))
    got, _ = raw.search_batch(lift_queries(users), K)
    rows.append(
        f"| {n}x{d} | lift + HNSW raw IP (rejected) "
        f"| {recall_at_k(got, exact):.4f} | – |"
    )
    ti, tu = logmap0(items), logmap0(users)
    l2 = (tu * tu).sum(1)[:, None] + (ti * ti).sum(1)[None, :] - 2 * tu @ ti.T
    tangent = exact_top_k(-l2, K)
    rows.append(
        f"| {n}x{d} | logmap0 + exact L2 (tangent shortcut) "
        f"| {recall_at_k(tangent, exact):.4f} | – |"
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data/ml-100k")
    parser.add_argument("--big", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--out", default="/tmp/bench_pipeline.md")
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    started = dt.datetime.now(dt.UTC)

    data = load_data(args.data)
    x = data.matrix()
    counts = data.item_counts()
    histories = data.histories()
    rng = np.random.default_rng(0)

    # ---------------------------------------------------------------- ANN
    _, s, vt = spla.svds(x.astype(np.float64), k=args.dim, random_state=0)
    factors = vt.T.astype(np.float32)  # (N, D): scores = x V V^T (fold-in)
    svd_users = np.stack([factors[h.items].sum(0) for h in histories])
    rand_items = rng.standard_normal((data.n_items, args.dim)).astype(np.float32)
    rand_users = rng.standard_normal((len(histories), args.dim)).astype(np.float32)
    lines = [
        "## FAISS: exact vs HNSW (recall@100 vs exact inner-product search)",
        "",
        "| vectors | items x dim | index | recall@100 | build s | query p50 ms "
        "| query p99 ms |",
        "|---|---|---|---|---|---|---|",
        *ann_rows("ML-100K SVD factors", factors, svd_users),
        *ann_rows("random Gaussian", rand_items, rand_users),
    ]
    if args.big:
        big = rng.standard_normal((args.big, args.dim)).astype(np.float32)
        lines += ann_rows("random Gaussian", big, rand_users[:300])
    lines += [
        "",
        "## Hyperbolic (Poincaré ball, c=1): recall@100 vs exact geodesic distance",
        "",
        "| items x dim | mapping | recall@100 | query p50 ms |",
        "|---|---|---|---|",
        *hyperbolic_rows(data.n_items, 32),
        *hyperbolic_rows(20_000, 32),
    ]

    # ------------------------------------------------------------- TF-IDF
    meta = ItemMetadata.from_interactions(data)
    texts = meta.texts()
    build = timed(lambda: ContentModel.from_metadata(meta), 5)
    content = ContentModel.from_metadata(meta)
    recents = [h.items[-5:] for h in histories]
    nb = timed_each(lambda r: content.neighbours(r, 300), recents)
    lines += [
        "",
        "## TF-IDF content model (ML-100K: title + genres text)",
        "",
        "| items | terms | build median s | neighbours(5 recent, k=300) p50 ms "
        "| p99 ms |",
        "|---|---|---|---|---|",
        f"| {len(texts)} | {content.matrix.shape[1]} | {np.median(build):.3f} "
        f"| {ms(nb)[0]:.3f} | {ms(nb)[1]:.3f} |",
    ]

    # ----------------------------------------------------------- pipeline
    knn = ItemKNN(neighbors=100)
    knn.fit(data)
    index = AnnIndex.build(factors)

    def next_items(history: History, k: int) -> np.ndarray:
        scores = knn.score([history])[0]
        top = np.argpartition(-scores, k)[:k]
        return top[np.argsort(-scores[top])]

    def svd_score(history: History, candidates: np.ndarray) -> tuple[np.ndarray, float]:
        return factors[candidates] @ factors[history.items].sum(0), 0.0

    retriever = Retriever(
        [
            ann_source(index, lambda h: factors[h.items].sum(0)),
            sequence_source(next_items),
            content_source(content),
            graph_source(meta),
        ],
        popular=popularity_order(counts),
        config=RetrievalConfig(),
    )
    ranker = Ranker(
        svd_score,
        ContentFallbackScorer(content, counts),
        RankingConfig(gate_threshold=0.5),
    )
    pipeline = RecommendationPipeline(retriever, ranker, Reranker(meta))
    lines += [
        "",
        f"## Pipeline per request ({len(histories)} requests per row: every "
        "ML-100K user's full history, n=10)",
        "",
        "Stand-ins: ranking = SVD dot product (disagreement 0, gate never fires), "
        "sequence source = engine item-kNN; sources: ann (SVD, flat IP), "
        "sequence, content (TF-IDF), graph (genres only on ML-100K), popular "
        "fallback; reranking similarity = genre cosine.",
        "",
        "| diversity | candidates (mean) | retrieval p50 / p99 ms | ranking p50 / p99 "
        "ms | reranking p50 / p99 ms | total p50 / p99 ms | ILD@10 (genre) |",
        "|---|---|---|---|---|---|---|",
    ]
    for h in histories[:20]:  # warm-up
        pipeline.run(RecommendationRequest(h))
    for diversity in (0.0, 0.3, 0.6):
        stage: dict[str, list[float]] = {
            "retrieval": [], "ranking": [], "reranking": [], "total": []
        }  # fmt: skip
        n_cand, ild = [], []
        for h in histories:
            result = pipeline.run(RecommendationRequest(h, n=10, diversity=diversity))
            for key in stage:
                stage[key].append(result.timings_ms[key] / 1e3)
            n_cand.append(result.n_candidates)
            ild.append(intra_list_diversity(result.items, meta.genre_similarity))
        cells = " | ".join("{:.2f} / {:.2f}".format(*ms(stage[k])) for k in stage)
        lines.append(
            f"| {diversity} | {np.mean(n_cand):.0f} | {cells} | {np.mean(ild):.3f} |"
        )

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    header = [
        "# Pipeline benchmark",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC",
        f"- command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        f"- machine: {os.cpu_count()} cores ({cpu}), shared with other jobs "
        f"(load average at the end {os.getloadavg()[0]:.1f}); FAISS / BLAS on 1 thread",
        f"- versions: Python {platform.python_version()}, faiss {faiss.__version__}, "
        f"scikit-learn {sklearn.__version__}, numpy {np.__version__}",
        f"- data: {data.describe()}; SVD = scipy.sparse.linalg.svds(k={args.dim}) "
        "of the binary user-item matrix, user vector = sum of the history's factors",
        "",
    ]
    report = "\n".join(header + lines) + "\n"
    print(report)
    Path(args.out).write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
