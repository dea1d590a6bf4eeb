"""The broker's command-line contract, observed through clients (jet processes of their own)."""

from __future__ import annotations


from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

import helpers
import kproto as kp

UNKNOWN_TOPIC_OR_PARTITION = 3


def _metadata(bootstrap: str, topics):
    host, port = helpers.split_bootstrap(bootstrap)
    import socket

    with socket.create_connection((host, port), timeout=10) as s:
        s.settimeout(10)
        s.sendall(kp.metadata_v1(9, topics))
        return kp.parse_metadata_v1(kp.recv_frame(s))


def test_auto_create_disabled(broker_with):
    b = broker_with("--auto-create-topics-enable", "false")
    t = helpers.unique_topic("noauto")
    md = _metadata(b.bootstrap, [t])
    assert [(e, n) for e, n, *_ in md["topics"]] == [(UNKNOWN_TOPIC_OR_PARTITION, t)], md["topics"]
    # a producer cannot deliver to it
    p = Producer({"bootstrap.servers": b.bootstrap, "message.timeout.ms": 5000, "topic.metadata.refresh.interval.ms": 500})
    errs = []
    p.produce(t, b"x", on_delivery=lambda err, m: errs.append(err))
    p.flush(30)
    assert len(errs) == 1 and errs[0] is not None, errs
    # still unknown afterwards
    md = _metadata(b.bootstrap, [t])
    assert [(e, n) for e, n, *_ in md["topics"]] == [(UNKNOWN_TOPIC_OR_PARTITION, t)], md["topics"]
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    res = ConfigResource(ResourceType.BROKER, "1")
    cfg = a.describe_configs([res])[res].result(timeout=30)
    assert cfg["auto.create.topics.enable"].value == "false"


def test_num_partitions_applies_to_auto_created_and_default_topics(broker_with):
    b = broker_with("--num-partitions", "3")
    t = helpers.unique_topic("np3")
    md = _metadata(b.bootstrap, [t])  # Metadata v1 with auto-create allowed creates it
    helpers.wait_until(lambda: helpers.topic_partitions_ready(b.bootstrap, t, 3), 30, "auto-created topic with 3 partitions")
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    t2 = helpers.unique_topic("np-default")
    a.create_topics([NewTopic(t2)], operation_timeout=30)[t2].result(timeout=60)  # num_partitions=-1: broker default
    helpers.wait_until(lambda: helpers.topic_partitions_ready(b.bootstrap, t2, 3), 30, "default-partition topic with 3 partitions")
    res = ConfigResource(ResourceType.BROKER, "1")
    cfg = a.describe_configs([res])[res].result(timeout=30)
    assert cfg["num.partitions"].value == "3"
