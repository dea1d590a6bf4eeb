"""Transactions with librdkafka: confluent-kafka's transactional producer (commit, abort,
a zombie fenced by a new instance) read back with isolation.level=read_committed by
confluent-kafka and by Debian's kcat (librdkafka 2.0.2). Java and franz-go have the same
scenario in their programs (test_java_client.py, test_go_clients.py)."""

from __future__ import annotations

import shutil

import pytest
from confluent_kafka import KafkaException, Producer

import helpers

KCAT = shutil.which("kcat") or shutil.which("kafkacat")


def transactional(broker, transactional_id: str) -> Producer:
    return Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": transactional_id, "linger.ms": 5})


def produce(p: Producer, topic: str, prefix: str, n: int) -> list[str]:
    values = [f"{prefix}-{i}" for i in range(n)]
    for i, v in enumerate(values):
        p.produce(topic, value=v.encode(), key=f"k{i}".encode(), partition=i % 2)
    return values


def committed_values(broker, topic: str, count: int, isolation: str) -> list[str]:
    out = []
    for partition in (0, 1):
        expected = (count + 1 - partition) // 2
        msgs = helpers.ck_consume_all(
            broker.bootstrap, topic, partition, expected, extra={"isolation.level": isolation}
        )
        out += [m.value().decode() for m in msgs]
    return sorted(out)


def test_librdkafka_transactions_commit_abort_and_fence(broker):
    topic = helpers.new_topic(broker.bootstrap, partitions=2, prefix="ck-txn")
    tid = f"ck-txn-{topic}"
    p = transactional(broker, tid)
    p.init_transactions(30)
    committed = []
    p.begin_transaction()
    committed += produce(p, topic, "first", 10)
    p.commit_transaction(30)
    p.begin_transaction()
    produce(p, topic, "aborted", 6)
    p.flush(30)
    p.abort_transaction(30)
    p.begin_transaction()
    committed += produce(p, topic, "second", 8)
    p.commit_transaction(30)

    # A new instance fences the old one.
    q = transactional(broker, tid)
    q.init_transactions(30)
    p.begin_transaction()
    produce(p, topic, "zombie", 2)
    with pytest.raises(KafkaException) as fenced:
        p.commit_transaction(30)
    assert fenced.value.args[0].fatal() or "fenced" in str(fenced.value).lower(), fenced.value
    q.begin_transaction()
    committed += produce(q, topic, "third", 4)
    q.commit_transaction(30)

    assert committed_values(broker, topic, len(committed), "read_committed") == sorted(committed)
    uncommitted = committed_values(broker, topic, len(committed) + 6, "read_uncommitted")
    assert sum(v.startswith("aborted") for v in uncommitted) == 6

    if KCAT is not None:
        # Debian's kcat (librdkafka 2.0.2) reads only the committed records, end of partition.
        out = helpers.run(
            [KCAT, "-b", broker.bootstrap, "-C", "-t", topic, "-e", "-q", "-X", "isolation.level=read_committed", "-f", "%s\n"],
            timeout=120,
        ).stdout.decode()
        assert sorted(out.split()) == sorted(committed), out
