"""Write a synthetic MovieLens-CSV-layout folder for the ETL scale benchmark.

Uses the engine's generator (``recommendations.engine.data.synthetic``) in
chunks: the generator is a per-event Python loop (~40 us/event), so one call
for 10M events would hold all rows in a Python list; chunks of ~100K events
keep memory flat and let progress be logged. Chunk ``k`` uses seed ``k`` and
shifts user ids by ``k * users_per_chunk`` so users never collide; item ids are
shared across chunks (same catalogue, different planted clusters).

    python benchmarks/etl_synthetic.py --out /tmp/apex-etl-bench/synthetic \
        --interactions 10000000

Output: ``ratings.csv`` (userId,movieId,rating,timestamp) and ``movies.csv``
(movieId,title,genres) -- the layout ``python -m etl run --source PATH`` reads.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from recommendations.engine.data.synthetic import generate

logger = logging.getLogger("benchmarks.etl_synthetic")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--users-per-chunk", type=int, default=1_000)
    parser.add_argument("--items", type=int, default=20_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    args.out.mkdir(parents=True, exist_ok=True)
    chunks = max(1, args.interactions // args.chunk)
    started = time.perf_counter()
    written = 0
    ratings_path = args.out / "ratings.csv"
    tmp = ratings_path.with_suffix(".csv.part")
    movies = None
    with tmp.open("w") as fh:
        fh.write("userId,movieId,rating,timestamp\n")
        for k in range(chunks):
            data = generate(
                users=args.users_per_chunk,
                items=args.items,
                interactions=args.chunk,
                clusters=20,
                seed=k,
            )
            frame = data.ratings.copy()
            frame["user_id"] += k * args.users_per_chunk
            frame["rating"] = frame["rating"].astype(int)
            frame.to_csv(fh, header=False, index=False)
            written += len(frame)
            if movies is None:
                movies = data.movies
            elapsed = time.perf_counter() - started
            logger.info(
                "chunk %d/%d: %d events, %.0f s elapsed, ETA %.0f s",
                k + 1, chunks, written, elapsed, elapsed / (k + 1) * (chunks - k - 1),
            )  # fmt: skip
    tmp.replace(ratings_path)
    assert movies is not None
    movies_out = movies.assign(
        title=movies["title"] + " (" + movies["year"].astype(str) + ")",
        genres=movies["genres"].map("|".join),
    ).rename(columns={"item_id": "movieId"})
    movies_out[["movieId", "title", "genres"]].to_csv(
        args.out / "movies.csv", index=False
    )
    print(  # CLI output
        f"wrote {written} events to {ratings_path} in "
        f"{time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
