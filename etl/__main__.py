"""``python -m etl``: run the medallion pipeline and look after the lake.

    python -m etl run --source ml-100k --lake var/lake [--layers bronze,silver,gold]
                      [--master URL] [--driver-memory 4g] [--shuffle-partitions 8]
    python -m etl status --lake var/lake
    python -m etl optimize --lake var/lake
    python -m etl vacuum --lake var/lake [--retain-hours 168]

``--source`` may be given several times (e.g. a MovieLens folder and a TMDB
folder). New files in ``<lake>/landing/events/`` are always ingested.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}


class FieldsFormatter(logging.Formatter):
    """Message followed by the record's ``extra`` fields as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if not fields:
            return base
        return base + " " + " ".join(f"{k}={v}" for k, v in fields.items())


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        FieldsFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # py4j logs every socket open/close at INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    if verbose:
        logging.getLogger("etl").setLevel(logging.DEBUG)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m etl", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--lake",
            default=os.environ.get("APEX_LAKE_DIR", "var/lake"),
            help="lake root folder or URL (default $APEX_LAKE_DIR or var/lake)",
        )
        p.add_argument(
            "--master", help="Spark master URL (default $APEX_SPARK_MASTER or local[*])"
        )
        p.add_argument(
            "--driver-memory", help="e.g. 4g (default $APEX_SPARK_DRIVER_MEMORY or 2g)"
        )
        p.add_argument("--shuffle-partitions", type=int, help="default 8")
        p.add_argument("-v", "--verbose", action="store_true")

    run = sub.add_parser("run", help="run bronze -> silver -> gold")
    common(run)
    run.add_argument(
        "--source", action="append", default=[],
        help="ml-100k (or another MovieLens name) or a folder; repeatable",
    )  # fmt: skip
    run.add_argument("--layers", default="bronze,silver,gold")
    run.add_argument("--no-landing", action="store_true", help="skip landing/events")
    for name, text in (
        ("status", "tables, versions, row counts, quarantine"),
        ("optimize", "compact and Z-order the tables"),
        ("vacuum", "delete files older versions no longer need"),
    ):
        p = sub.add_parser(name, help=text)
        common(p)
        if name in ("optimize", "vacuum"):
            p.add_argument(
                "--tables", help="comma-separated layer.table names (default: all)"
            )
        if name == "vacuum":
            p.add_argument("--retain-hours", type=float, default=168.0)
    return parser


def _tables(args: argparse.Namespace) -> list[str] | None:
    return [t.strip() for t in args.tables.split(",")] if args.tables else None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(args.verbose)
    from etl import pipeline
    from etl.lake import Lake

    lake = Lake(args.lake)
    if args.command == "status":
        # Status reads the Delta logs with `deltalake`: no Spark session needed.
        for entry in pipeline.status(lake):
            print(json.dumps(entry, default=str))
        return 0

    from pyspark.sql import SparkSession

    from etl.sources import InputFileError
    from etl.spark import SparkSettings, SparkSetupError, build_spark

    # A session someone else started (tests, a notebook) is theirs to stop.
    owned = SparkSession.getActiveSession() is None
    started = time.perf_counter()
    try:
        settings = SparkSettings.from_env(
            master=args.master,
            driver_memory=args.driver_memory,
            shuffle_partitions=args.shuffle_partitions,
        )
        spark = build_spark(settings)
    except SparkSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    startup = time.perf_counter() - started
    try:
        if args.command == "run":
            layers = tuple(x.strip() for x in args.layers.split(",") if x.strip())
            report = pipeline.run(
                spark, lake, sources=args.source, layers=layers,
                include_landing=not args.no_landing,
            )  # fmt: skip
            out = {
                "batch": report.batch,
                "spark_startup_s": round(startup, 2),
                "pipeline_s": report.seconds,
                "rows": report.rows,
                "stages": report.stages,
            }
            print(json.dumps(out, indent=2, default=str))
        elif args.command == "optimize":
            print("\n".join(pipeline.optimize(spark, lake, tables=_tables(args))))
        elif args.command == "vacuum":
            done = pipeline.vacuum(
                spark, lake, retain_hours=args.retain_hours, tables=_tables(args)
            )
            print("\n".join(done))
    except InputFileError as exc:
        print(f"error: bad input file: {exc}", file=sys.stderr)
        return 2
    finally:
        if owned:
            spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
