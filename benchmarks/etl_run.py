"""Time the ETL end to end: Spark start-up, every stage, peak memory.

    PYTHONPATH=. SPARK_LOCAL_IP=127.0.0.1 python benchmarks/etl_run.py \
        --source /path/to/ml-100k --master 'local[2]'
    PYTHONPATH=. SPARK_LOCAL_IP=127.0.0.1 nice python benchmarks/etl_run.py \
        --source /tmp/apex-etl-bench/synthetic --driver-memory 6g \
        --shuffle-partitions 16

The lake is a fresh temporary folder (``--lake`` to keep it). Peak memory is
sampled every 0.5 s as the summed RSS of this process and its children (the
Spark JVM is a child of the Python driver). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil

STARTED = time.perf_counter()


class PeakRss:
    """Background sampler of this process tree's resident memory."""

    def __init__(self, interval: float = 0.5) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            self._stop.wait(interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", action="append", required=True)
    parser.add_argument("--lake")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    from etl import pipeline
    from etl.lake import Lake
    from etl.spark import SparkSettings, build_spark

    keep = args.lake is not None
    lake_dir = Path(args.lake or tempfile.mkdtemp(prefix="apex-etl-bench-"))
    with PeakRss() as memory:
        t0 = time.perf_counter()
        spark = build_spark(
            SparkSettings.from_env(
                master=args.master,
                driver_memory=args.driver_memory,
                shuffle_partitions=args.shuffle_partitions,
            )
        )
        startup = time.perf_counter() - t0
        report = pipeline.run(spark, Lake(str(lake_dir)), sources=args.source)
        spark.stop()
    total = time.perf_counter() - STARTED
    if not keep:
        shutil.rmtree(lake_dir, ignore_errors=True)
    result = {
        "command": "benchmarks/etl_run.py "
        + " ".join(f"--source {s}" for s in args.source)
        + f" --master {args.master} --driver-memory {args.driver_memory}"
        f" --shuffle-partitions {args.shuffle_partitions}",
        "machine": f"{os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.machine()}",
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "wall_s": round(total, 1),
        "spark_startup_s": round(startup, 1),
        "startup_share": round(startup / total, 3),
        "pipeline_s": report.seconds,
        "peak_rss_gib": round(memory.peak / 2**30, 2),
        "rows": report.rows,
        "stages": [
            {k: s.get(k) for k in ("stage", "rows", "seconds", "rows_per_s")}
            for s in report.stages
        ],
    }
    print(json.dumps(result, indent=2))  # CLI output


if __name__ == "__main__":
    main()
