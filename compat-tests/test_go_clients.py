"""Go clients: franz-go (kgo + kadm) and IBM/sarama, pinned in go/go.mod, driven as a subprocess."""

from __future__ import annotations

import pytest

import helpers


@pytest.mark.parametrize("scenario", ["franz-produce-consume", "franz-codecs", "kadm-admin", "sarama-produce-consume", "sarama-v3-codecs", "franz-transactions"])
def test_go_scenario(broker, go_binary, scenario):
    helpers.run_scenario(go_binary, broker.bootstrap, scenario)
