"""Compaction of a replicated topic with stock clients: on a 3-broker cluster
(examples/cluster.sh), confluent-kafka creates a replication-factor-3 topic with
cleanup.policy=compact and small segments, and an acks=all producer writes keys once and then
rewrites a few keys many times. Through every broker alone, a consumer reading from the
beginning then gets the compacted log — fewer than half of the records, each at the offset it
was written, the latest record of every key among them — and kcat (Debian's librdkafka) reads
the same latest values. Every wait is on a condition."""

from __future__ import annotations

from confluent_kafka import OFFSET_BEGINNING, Producer
from confluent_kafka.admin import AdminClient, NewTopic

import helpers
from test_cluster_clients import bootstrap, cluster, leaders, read_partition  # noqa: F401 (cluster: fixture)
from test_cluster_script import HOST, IDS, kafka_port

ONCE = 100
ROUNDS = 40
HOT_KEYS = 20


def produce_keyed(bs: str, topic: str) -> dict[int, tuple[str, str]]:
    """offset -> (key, value) of every acknowledged record."""
    written: dict[int, tuple[str, str]] = {}
    errors: list = []

    def delivered(err, msg):
        if err:
            errors.append(err)
        else:
            written[msg.offset()] = (msg.key().decode(), msg.value().decode())

    p = Producer({"bootstrap.servers": bs, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    # One batch per round (flushed), so the records spread over many small segments:
    # compaction never touches the active one.
    for i in range(ONCE):
        p.produce(topic, key=f"once-{i}", value=f"value-{i}", partition=0, on_delivery=delivered)
    assert p.flush(60) == 0
    for r in range(ROUNDS):
        for i in range(100):
            n = ONCE + r * 100 + i
            p.produce(topic, key=f"hot-{i % HOT_KEYS}", value=f"value-{n}", partition=0, on_delivery=delivered)
        assert p.flush(60) == 0
    assert not errors, errors[:3]
    return written


def test_a_replicated_compacted_topic_is_compacted_on_every_broker(cluster):
    bs = bootstrap(cluster)
    topic = helpers.unique_topic("compacted-rf3")
    configs = {"cleanup.policy": "compact", "segment.bytes": "16384", "min.cleanable.dirty.ratio": "0.01"}
    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic(topic, 1, 3, config=configs)])[topic].result(30)
    helpers.wait_until(lambda: leaders(bs, topic).get(0, (-1,))[0] >= 0, 60, "a leader")
    written = produce_keyed(bs, topic)
    assert len(written) == ONCE + ROUNDS * 100
    latest: dict[str, int] = {}
    for off in sorted(written):
        latest[written[off][0]] = off
    end = max(written) + 1

    for broker in IDS:
        one = f"{HOST}:{kafka_port(cluster.base, broker)}"
        seen: list[list[tuple[int, str]]] = []

        def compacted() -> bool:
            log = read_partition(one, topic, 0, end, start=OFFSET_BEGINNING)
            seen[:] = [log]
            return 0 < len(log) < len(written) // 2 and log[-1][0] == end - 1

        helpers.wait_until(compacted, 120, f"broker {broker} to serve the compacted log")
        log = seen[0]
        wrong = [(off, v) for off, v in log if written.get(off, (None, None))[1] != v]
        assert not wrong, f"through broker {broker}: records not written at those offsets, e.g. {wrong[:3]}"
        at = dict(log)
        lost = [k for k, off in latest.items() if at.get(off) != written[off][1]]
        assert not lost, f"through broker {broker}: the latest record of {len(lost)} keys is missing, e.g. {lost[:3]}"

    kcat = helpers.run(["kcat", "-b", bs, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", "%k=%s@%o\n"])
    served: dict[str, tuple[str, int]] = {}
    for line in kcat.stdout.decode().split():
        kv, off = line.rsplit("@", 1)
        k, v = kv.split("=", 1)
        served[k] = (v, int(off))
    assert served == {k: (written[off][1], off) for k, off in latest.items()}
