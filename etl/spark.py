"""The one place a Spark session is built.

Settings come from arguments first, then environment variables, then laptop
defaults (:class:`SparkSettings`). Delta Lake's jars are found by
:func:`plan_delta_jars`, the single code path that decides *how*:

``cache``
    a manifest written after an earlier successful start lists jar files that
    still exist; they go to ``spark.jars`` and no resolver runs, so an offline
    machine with a warm cache starts.
``ivy``
    ``configure_spark_with_delta_pip`` adds ``spark.jars.packages``; Spark's Ivy
    resolver downloads from Maven Central into ``spark.jars.ivy``
    (default ``~/.ivy2``, override with ``APEX_SPARK_IVY_DIR``).
``maven``
    for machines where Ivy cannot reach Maven Central but ``mvn`` can (proxy
    or mirror in ``~/.m2/settings.xml``): ``mvn dependency:copy-dependencies``
    copies the same artifacts into ``APEX_SPARK_JAR_CACHE``
    (default ``~/.cache/apex/spark-jars``) and ``spark.jars`` points at them.

``APEX_SPARK_JARS=auto|cache|ivy|maven`` forces a mode; ``auto`` tries
cache -> ivy -> maven. The mode used is logged and returned.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)
# py4j logs every gateway connection at INFO, including from an atexit hook
# after logging's streams are closed ("--- Logging error ---" at shutdown).
logging.getLogger("py4j").setLevel(logging.WARNING)

JarMode = Literal["cache", "ivy", "maven"]
_MODES = ("auto", "cache", "ivy", "maven")
_MEMORY_RE = re.compile(r"^\d+[kmgt]$", re.IGNORECASE)


class SparkSetupError(RuntimeError):
    """Spark (or Delta's jars) could not be set up; the message says what to do."""


def _env_str(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SparkSetupError(f"{name}={raw!r} is not an integer") from None
    if value < 1:
        raise SparkSetupError(f"{name}={raw!r} must be >= 1")
    return value


@dataclass(frozen=True)
class SparkSettings:
    """How to start Spark. ``from_env`` fills unset fields from ``APEX_SPARK_*``."""

    master: str = "local[*]"
    app_name: str = "apex-etl"
    driver_memory: str = "2g"
    shuffle_partitions: int = 8
    jars_mode: str = "auto"
    ivy_dir: Path = field(default_factory=lambda: Path.home() / ".ivy2")
    jar_cache: Path = field(
        default_factory=lambda: Path.home() / ".cache" / "apex" / "spark-jars"
    )
    extra_conf: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _MEMORY_RE.match(self.driver_memory):
            raise SparkSetupError(
                f"driver memory {self.driver_memory!r} must look like 2g or 512m"
            )
        if self.jars_mode not in _MODES:
            raise SparkSetupError(
                f"APEX_SPARK_JARS={self.jars_mode!r}: expected one of {_MODES}"
            )

    @classmethod
    def from_env(
        cls,
        *,
        master: str | None = None,
        app_name: str = "apex-etl",
        driver_memory: str | None = None,
        shuffle_partitions: int | None = None,
        extra_conf: dict[str, str] | None = None,
    ) -> SparkSettings:
        home = Path.home()
        return cls(
            master=master or _env_str("APEX_SPARK_MASTER", "local[*]"),
            app_name=app_name,
            # 2g fits a laptop and ML-100K with room to spare; the 10M benchmark
            # raises it explicitly.
            driver_memory=driver_memory or _env_str("APEX_SPARK_DRIVER_MEMORY", "2g"),
            # Spark's default of 200 shuffle partitions means 200 tiny tasks per
            # shuffle on a laptop; 8 keeps a 2-core machine busy without that
            # overhead. Clusters set APEX_SPARK_SHUFFLE_PARTITIONS.
            shuffle_partitions=shuffle_partitions
            or _env_int("APEX_SPARK_SHUFFLE_PARTITIONS", 8),
            jars_mode=_env_str("APEX_SPARK_JARS", "auto").lower(),
            ivy_dir=Path(_env_str("APEX_SPARK_IVY_DIR", str(home / ".ivy2"))),
            jar_cache=Path(
                _env_str(
                    "APEX_SPARK_JAR_CACHE",
                    str(home / ".cache" / "apex" / "spark-jars"),
                )
            ),
            extra_conf=dict(extra_conf or {}),
        )


@dataclass(frozen=True)
class JarPlan:
    """What :func:`build_spark` does about Delta's jars."""

    mode: JarMode
    packages: tuple[str, ...]
    jars: tuple[Path, ...] = ()


# ----------------------------------------------------------------- jar planning


# delta-spark 4.4.1 was published to PyPI without its jars on Maven Central
# (io.delta:delta-spark_4.2_2.13:4.4.1 answers 404, checked 2026-11-26); the
# Python package is a thin py4j wrapper, so it runs on the 4.4.0 jars of the
# same release line. APEX_DELTA_JAR_VERSION overrides any mapping.
DELTA_JAR_VERSION_FOR_PIP = {"4.4.1": "4.4.0"}


def delta_packages() -> tuple[str, ...]:
    """Maven coordinates of Delta's jars.

    Taken from delta-spark's own ``configure_spark_with_delta_pip`` (so the
    artifact name follows the installed pyspark), with the version mapped by
    :data:`DELTA_JAR_VERSION_FOR_PIP` or ``APEX_DELTA_JAR_VERSION``.
    """
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    builder = configure_spark_with_delta_pip(SparkSession.builder)
    packages = builder._options.get("spark.jars.packages", "")  # noqa: SLF001
    # Builder options are global to the builder class; undo the side effect.
    builder._options.pop("spark.jars.packages", None)  # noqa: SLF001
    out = []
    for coord in (p for p in packages.split(",") if p):
        group, artifact, version = coord.split(":")
        if group == "io.delta":
            version = os.environ.get("APEX_DELTA_JAR_VERSION", "").strip() or (
                DELTA_JAR_VERSION_FOR_PIP.get(version, version)
            )
        out.append(f"{group}:{artifact}:{version}")
    return tuple(out)


def _manifest(settings: SparkSettings, packages: tuple[str, ...]) -> Path:
    key = hashlib.sha256(",".join(packages).encode()).hexdigest()[:12]
    return settings.jar_cache / f"manifest-{key}.txt"


def _cached_jars(
    settings: SparkSettings, packages: tuple[str, ...]
) -> tuple[Path, ...]:
    manifest = _manifest(settings, packages)
    if not manifest.is_file():
        return ()
    jars = tuple(Path(line) for line in manifest.read_text().split() if line)
    return jars if jars and all(j.is_file() for j in jars) else ()


def write_manifest(
    settings: SparkSettings, packages: tuple[str, ...], jars: list[Path]
) -> None:
    settings.jar_cache.mkdir(parents=True, exist_ok=True)
    _manifest(settings, packages).write_text("\n".join(str(j) for j in jars) + "\n")


def maven_copy(settings: SparkSettings, packages: tuple[str, ...]) -> tuple[Path, ...]:
    """Copy ``packages`` and their runtime dependencies with ``mvn``.

    The same closure Spark's Ivy resolves (34 jars for Delta 4.4: delta-*,
    parquet, hadoop-client, jackson, ...); Spark and Scala themselves are
    excluded because the JVM already has them.
    """
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SparkSetupError("mvn is not installed; cannot copy Delta's jars")
    out = settings.jar_cache / "maven"
    out.mkdir(parents=True, exist_ok=True)
    deps = "".join(
        f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in (p.split(":") for p in packages)
    )
    pom = (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0'
        "</modelVersion><groupId>apex</groupId><artifactId>delta-jars</artifactId>"
        f"<version>0</version><dependencies>{deps}</dependencies></project>"
    )
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "pom.xml").write_text(pom)
        cmd = [
            mvn, "-q", "-B", "dependency:copy-dependencies",
            f"-DoutputDirectory={out}", "-DincludeScope=runtime",
            # Spark ships these itself; Spark's Ivy path excludes them too.
            "-DexcludeGroupIds=org.scala-lang,org.apache.spark",
        ]  # fmt: skip
        logger.info("copying delta jars with mvn", extra={"dir": str(out)})
        proc = subprocess.run(
            cmd, cwd=tmp, capture_output=True, text=True, timeout=900, check=False
        )
    if proc.returncode != 0:
        raise SparkSetupError(
            "mvn dependency:copy-dependencies failed:\n" + proc.stdout[-2000:]
        )
    return tuple(sorted(out.glob("*.jar")))


def plan_delta_jars(
    settings: SparkSettings, *, after_ivy_failure: bool = False
) -> JarPlan:
    """Decide how Delta's jars reach the JVM (see the module docstring)."""
    packages = delta_packages()
    mode = settings.jars_mode
    if mode in ("auto", "cache"):
        jars = _cached_jars(settings, packages)
        if jars:
            return JarPlan("cache", packages, jars)
        if mode == "cache":
            raise SparkSetupError(
                f"APEX_SPARK_JARS=cache but {_manifest(settings, packages)} is "
                "missing or lists missing jars; start once online first"
            )
    if mode == "ivy" or (mode == "auto" and not after_ivy_failure):
        return JarPlan("ivy", packages)
    return JarPlan("maven", packages, maven_copy(settings, packages))


# --------------------------------------------------------------- the session


def _builder(settings: SparkSettings, plan: JarPlan):  # noqa: ANN202 - pyspark type
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(settings.master)
        .appName(settings.app_name)
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        # Delta replays its log with 50 partitions by default: 50 tasks for
        # every table read, which dominates small-table work on a laptop.
        .config(
            "spark.databricks.delta.snapshotPartitions",
            str(settings.shuffle_partitions),
        )
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog",
            "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        )
        # Every timestamp the pipeline writes is UTC, whatever the host says.
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.jars.ivy", str(settings.ivy_dir))
    )
    if settings.master.startswith("local"):
        # No one looks at a local job's UI; skipping it saves start-up time
        # and a port.
        builder = builder.config("spark.ui.enabled", "false")
    if plan.mode == "ivy":
        builder = builder.config("spark.jars.packages", ",".join(plan.packages))
    else:
        builder = builder.config("spark.jars", ",".join(str(j) for j in plan.jars))
    for key, value in settings.extra_conf.items():
        builder = builder.config(key, value)
    return builder


def _ivy_jars(spark: SparkSession) -> list[Path]:
    listed = spark.sparkContext.getConf().get("spark.jars", "")
    jars = [Path(urlparse(p).path) for p in listed.split(",") if p]
    return [j for j in jars if j.is_file()]


def build_spark(settings: SparkSettings | None = None) -> SparkSession:
    """Start (or return the running) Spark session with Delta configured."""
    from pyspark.sql import SparkSession

    settings = settings or SparkSettings.from_env()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if settings.master.startswith("local"):
        # Local mode never needs a routable address; binding to loopback
        # avoids hostname lookups that hang on machines without DNS.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    plan = plan_delta_jars(settings)
    started = time.perf_counter()
    try:
        spark = _builder(settings, plan).getOrCreate()
    except Exception as exc:
        if plan.mode != "ivy" or settings.jars_mode != "auto":
            raise SparkSetupError(
                f"Spark failed to start ({plan.mode}): {exc}"
            ) from exc
        logger.warning(
            "ivy could not resolve delta jars; falling back to mvn",
            extra={"error": str(exc)[:500]},
        )
        plan = plan_delta_jars(settings, after_ivy_failure=True)
        spark = _builder(settings, plan).getOrCreate()
    if plan.mode == "ivy":
        jars = _ivy_jars(spark)
        if jars:
            write_manifest(settings, plan.packages, jars)
    elif plan.mode == "maven":
        write_manifest(settings, plan.packages, list(plan.jars))
    spark.sparkContext.setLogLevel("WARN")
    logger.info(
        "spark session started",
        extra={
            "master": settings.master,
            "jars_mode": plan.mode,
            "packages": ",".join(plan.packages),
            "seconds": round(time.perf_counter() - started, 2),
        },
    )
    # The mode is also kept on the session so `etl status` and tests can show it.
    spark.conf.set("apex.etl.jarsMode", plan.mode)
    return spark
