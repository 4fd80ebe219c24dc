"""The session builder: settings, the Delta jar plan, and a real session."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl import spark as spark_mod
from etl.spark import SparkSettings, SparkSetupError, delta_packages, plan_delta_jars


def test_it_rejects_malformed_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SparkSetupError, match="driver memory"):
        SparkSettings(driver_memory="lots")
    monkeypatch.setenv("APEX_SPARK_SHUFFLE_PARTITIONS", "many")
    with pytest.raises(SparkSetupError, match="APEX_SPARK_SHUFFLE_PARTITIONS"):
        SparkSettings.from_env()
    monkeypatch.setenv("APEX_SPARK_SHUFFLE_PARTITIONS", "4")
    monkeypatch.setenv("APEX_SPARK_JARS", "gradle")
    with pytest.raises(SparkSetupError, match="APEX_SPARK_JARS"):
        SparkSettings.from_env()


def test_it_reads_master_and_sizes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APEX_SPARK_MASTER", "spark://head:7077")
    monkeypatch.setenv("APEX_SPARK_DRIVER_MEMORY", "6g")
    monkeypatch.setenv("APEX_SPARK_SHUFFLE_PARTITIONS", "64")
    settings = SparkSettings.from_env()
    assert (settings.master, settings.driver_memory, settings.shuffle_partitions) == (
        "spark://head:7077", "6g", 64,
    )  # fmt: skip
    assert SparkSettings.from_env(master="local[2]").master == "local[2]"


def test_delta_coordinates_follow_pyspark_and_map_the_jarless_pip_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import delta
    import pyspark

    (coord,) = delta_packages()
    group, artifact, version = coord.split(":")
    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    assert (group, artifact) == ("io.delta", f"delta-spark_{spark_minor}_2.13")
    del delta
    from importlib.metadata import version as pip_version

    pip = pip_version("delta-spark")
    assert version == spark_mod.DELTA_JAR_VERSION_FOR_PIP.get(pip, pip)
    monkeypatch.setenv("APEX_DELTA_JAR_VERSION", "9.9.9")
    assert delta_packages()[0].endswith(":9.9.9")


def _settings(tmp_path: Path, mode: str = "auto") -> SparkSettings:
    return SparkSettings(jars_mode=mode, jar_cache=tmp_path / "jars", ivy_dir=tmp_path)


def test_a_warm_manifest_means_no_resolver(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    jar = tmp_path / "delta.jar"
    jar.write_bytes(b"PK")
    spark_mod.write_manifest(settings, delta_packages(), [jar])
    plan = plan_delta_jars(settings)
    assert plan.mode == "cache" and plan.jars == (jar,)


def test_a_manifest_with_a_deleted_jar_falls_back_to_ivy(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    spark_mod.write_manifest(settings, delta_packages(), [tmp_path / "gone.jar"])
    assert plan_delta_jars(settings).mode == "ivy"
    with pytest.raises(SparkSetupError, match="start once online"):
        plan_delta_jars(_settings(tmp_path, "cache"))


def test_after_an_ivy_failure_it_copies_jars_with_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], cwd: str, **_: object) -> object:
        calls.append(cmd)
        assert "io.delta" in Path(cwd, "pom.xml").read_text()
        out = Path(
            next(c for c in cmd if c.startswith("-DoutputDirectory=")).split("=")[1]
        )
        (out / "delta-spark.jar").write_bytes(b"PK")
        return type("Done", (), {"returncode": 0, "stdout": ""})()

    monkeypatch.setattr(spark_mod.shutil, "which", lambda _: "/usr/bin/mvn")
    monkeypatch.setattr(spark_mod.subprocess, "run", fake_run)
    plan = plan_delta_jars(_settings(tmp_path), after_ivy_failure=True)
    assert plan.mode == "maven"
    assert [p.name for p in plan.jars] == ["delta-spark.jar"]
    assert "dependency:copy-dependencies" in calls[0]


def test_maven_mode_without_mvn_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spark_mod.shutil, "which", lambda _: None)
    with pytest.raises(SparkSetupError, match="mvn is not installed"):
        plan_delta_jars(_settings(tmp_path, "maven"))


@pytest.mark.spark
def test_the_session_has_delta_and_utc(spark, tmp_path: Path) -> None:
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("apex.etl.jarsMode") in ("cache", "ivy", "maven")
    path = str(tmp_path / "t")
    spark.range(3).write.format("delta").save(path)
    assert spark.read.format("delta").load(path).count() == 3
