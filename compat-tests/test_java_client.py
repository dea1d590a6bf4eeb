"""Java org.apache.kafka:kafka-clients 4.x (pinned in java/pom.xml), driven as a subprocess."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import helpers

JAVA_DIR = Path(__file__).resolve().parent / "java"


@pytest.fixture(scope="session")
def java_classpath():
    classes, lib = JAVA_DIR / "target" / "classes", JAVA_DIR / "target" / "lib"
    if not (classes / "jet" / "compat" / "Main.class").exists() or not lib.is_dir():
        # run.sh builds this once per run; build here only when pytest is run on its own
        mvn = shutil.which("mvn")
        if mvn is None:
            pytest.skip("Java client not built and mvn missing (run compat-tests/run.sh)")
        helpers.run([mvn, "-q", "-B", "-f", str(JAVA_DIR / "pom.xml"), "package", "-DskipTests"], timeout=600)
    return f"{classes}{os.pathsep}{lib}/*"


@pytest.mark.parametrize(
    "scenario",
    ["produce-consume", "admin-topics", "describe-cluster", "describe-configs", "create-partitions", "delete-records", "codecs"],
)
def test_java_scenario(broker, java_classpath, scenario):
    p = helpers.run(
        ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", java_classpath, "jet.compat.Main", broker.bootstrap, scenario],
        timeout=240,
    )
    assert f"OK {scenario}" in p.stdout.decode(), p.stdout.decode()
