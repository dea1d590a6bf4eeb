"""Go consumer groups (go/groups.go): franz-go with the range and cooperative-sticky balancers,
static membership (kgo.InstanceID), members of three overlapping groups rebalancing at once,
and a sarama ConsumerGroup that marks and commits."""

from __future__ import annotations

import pytest

import helpers


@pytest.mark.parametrize(
    "scenario",
    ["franz-group-range", "franz-group-cooperative", "franz-group-static", "franz-group-chained", "sarama-group"],
)
def test_go_group_scenario(group_broker, go_binary, scenario):
    helpers.run_scenario(go_binary, group_broker.bootstrap, scenario)
