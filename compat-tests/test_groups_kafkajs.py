"""kafkajs consumer group (js/main.js scenario "group"): two consumers split a topic, every
record is consumed, commits reach the end offsets, the group is Empty after they disconnect."""

from __future__ import annotations

import helpers


def test_kafkajs_group(group_broker, kafkajs_main):
    helpers.run_scenario(kafkajs_main, group_broker.bootstrap, "group")
