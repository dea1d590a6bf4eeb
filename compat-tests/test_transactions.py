"""Transactions with librdkafka: confluent-kafka's transactional producer (commit, abort,
a zombie fenced by a new instance) read back with isolation.level=read_committed by
confluent-kafka and by Debian's kcat (librdkafka 2.0.2), and a consume-transform-produce
loop that commits its group's offsets with its transactions (send_offsets_to_transaction).
Java and franz-go have the same scenario in their programs (test_java_client.py,
test_go_clients.py)."""

from __future__ import annotations

import shutil

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

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


def read_some(c: Consumer, n: int) -> list:
    """The next `n` records the group consumer `c` is given."""
    got: list = []

    def more() -> bool:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m)
        return len(got) >= n

    helpers.wait_until(more, 60, f"{n} records")
    return got


def test_librdkafka_consume_transform_produce(broker):
    """Exactly-once processing: each transaction writes the transformed records and the
    group's new offsets together. An aborted transaction moves neither; the next member
    of the group resumes from the last committed transaction's offsets, so the output
    holds every input exactly once."""
    source = helpers.new_topic(broker.bootstrap, partitions=1, prefix="ck-eos-in")
    sink = helpers.new_topic(broker.bootstrap, partitions=1, prefix="ck-eos-out")
    group = helpers.unique_group("ck-eos")
    plain = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    for i in range(30):
        plain.produce(source, value=f"in-{i}".encode())
    assert plain.flush(30) == 0

    def member() -> Consumer:
        c = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        c.subscribe([source])
        return c

    def process(c: Consumer, p: Producer, n: int, commit: bool) -> list[str]:
        records = read_some(c, n)
        p.begin_transaction()
        out = [m.value().decode().replace("in-", "out-") for m in records]
        for v in out:
            p.produce(sink, value=v.encode())
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
        return out

    p = transactional(broker, f"ck-eos-{group}")
    p.init_transactions(30)
    c = member()
    written = process(c, p, 10, commit=True)
    process(c, p, 10, commit=False)
    c.close()
    # The aborted transaction's offsets never became the group's.
    probe = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "isolation.level": "read_committed"})
    assert [tp.offset for tp in probe.committed([TopicPartition(source, 0)], timeout=30)] == [10]
    probe.close()

    c = member()
    written += process(c, p, 20, commit=True)
    c.close()
    out = helpers.ck_consume_all(broker.bootstrap, sink, 0, 30, extra={"isolation.level": "read_committed"})
    assert [m.value().decode() for m in out] == [f"out-{i}" for i in range(30)]
    assert written == [f"out-{i}" for i in range(30)]
