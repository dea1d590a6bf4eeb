"""Java kafka-clients 4.1.1 consumer groups (java/ Groups.java): KafkaConsumer with
group.protocol=classic and =consumer (KIP-848, server-side uniform/range assignors), and the
Admin group APIs (list/describe/offsets/alter/delete) on live and empty groups of both kinds."""

from __future__ import annotations

import pytest

import helpers


@pytest.mark.parametrize(
    "scenario",
    ["group-classic", "group-consumer-uniform", "group-consumer-range", "group-admin-classic", "group-admin-consumer"],
)
def test_java_group_scenario(group_broker, java_main, scenario):
    helpers.run_scenario(java_main, group_broker.bootstrap, scenario)
