"""Java org.apache.kafka:kafka-clients 4.x (pinned in java/pom.xml), driven as a subprocess."""

from __future__ import annotations

import pytest

import helpers


@pytest.mark.parametrize(
    "scenario",
    ["produce-consume", "admin-topics", "describe-cluster", "describe-configs", "create-partitions", "delete-records", "codecs", "transactions"],
)
def test_java_scenario(broker, java_main, scenario):
    helpers.run_scenario(java_main, broker.bootstrap, scenario)
