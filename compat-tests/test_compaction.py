"""Log compaction with real clients (issue 9): a topic with cleanup.policy=compact keeps the
latest value of each key at the offset it was written, shrinks, drops a tombstone once
delete.retention.ms has passed after the cleaning that first saw it, and refuses records
without a key (INVALID_RECORD). Short settings (segment.ms=100, delete.retention.ms=1000,
log.cleaner.backoff.ms=50) keep each test to seconds; every wait is on a condition."""

from __future__ import annotations

from pathlib import Path

import helpers

CLEANER_ARGS = ("--set", "log.cleaner.backoff.ms=50")
COMPACT = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "1000",
}


def log_bytes(data_dir: Path, topic: str) -> int:
    return sum(f.stat().st_size for f in (data_dir / f"{topic}-0").glob("*.log"))


def stored_batches(data_dir: Path, topic: str) -> list[tuple[int, int, int]]:
    """(base offset, producer id, record count) of every batch in the partition's segments."""
    out = []
    for f in sorted((data_dir / f"{topic}-0").glob("*.log")):
        data = f.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base = int.from_bytes(data[pos : pos + 8], "big", signed=True)
            length = int.from_bytes(data[pos + 8 : pos + 12], "big")
            producer = int.from_bytes(data[pos + 43 : pos + 51], "big", signed=True)
            count = int.from_bytes(data[pos + 57 : pos + 61], "big")
            out.append((base, producer, count))
            pos += 12 + length
    return out


def read_all(bootstrap: str, topic: str) -> list[tuple[int, str | None, str | None]]:
    """Every record of partition 0 up to the high watermark: (offset, key, value)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": helpers.unique_group("unused"), "enable.auto.commit": False})
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.assign([TopicPartition(topic, 0, low)])
        out: list[tuple[int, str | None, str | None]] = []
        last = low - 1
        while last < high - 1:
            m = c.poll(5)
            assert m is not None, f"no record after offset {last} (high watermark {high})"
            assert m.error() is None, m.error()
            d = lambda b: None if b is None else b.decode()  # noqa: E731
            out.append((m.offset(), d(m.key()), d(m.value())))
            last = m.offset()
        return out
    finally:
        c.close()


def test_confluent_kafka_compacted_topic(broker_with):
    from confluent_kafka import KafkaError, Producer

    b = broker_with(*CLEANER_ARGS)
    topic = helpers.unique_topic("compact")
    helpers.create_topic(b.bootstrap, topic, 1, COMPACT)
    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "linger.ms": 0})
    latest: dict[str, tuple[int, str | None]] = {}

    def send(key: str, value: str | None) -> None:
        def done(err, msg):
            assert err is None, err
            latest[key] = (msg.offset(), value)

        p.produce(topic, key=key.encode(), value=None if value is None else value.encode(), on_delivery=done)
        p.flush(30)

    for rnd in range(20):
        for k in range(5):
            send(f"k{k}", f"v{rnd}")
    send("k4", None)  # a tombstone: k4 must disappear once delete.retention.ms has passed
    # Each of the 101 sends was one batch (flushed one by one) of at least its 61-byte header;
    # the cleaner may already be at work while they are written, so that is the yardstick.
    written_at_least = 101 * 61
    want = sorted((off, k, v) for k, (off, v) in latest.items() if v is not None)

    def compacted():
        send("tick", "x")  # rolls the active segment (segment.ms=100) so the rest is cleanable
        got = [r for r in read_all(b.bootstrap, topic) if r[1] != "tick"]
        return got == want

    helpers.wait_until(compacted, 30, "the latest value per key only, k4's tombstone gone", interval=0.1)
    size = log_bytes(b.data_dir, topic)
    assert size < written_at_least / 4, f"the topic shrinks: {size} bytes, at least {written_at_least} written"

    errors = []
    p.produce(topic, value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert len(errors) == 1 and errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD, errors


def test_java_compacted_topic(broker_with, java_main):
    b = broker_with(*CLEANER_ARGS)
    helpers.run_scenario(java_main, b.bootstrap, "compacted-topic")


def test_confluent_kafka_reads_through_an_emptied_producer_batch(broker_with):
    """An idempotent producer's last batch stays after compaction even when every record in
    it was superseded (Kafka keeps it, empty, so the producer's sequence survives); consumers
    read past it, and the producer goes on without an out-of-sequence error."""
    from confluent_kafka import Producer

    b = broker_with(*CLEANER_ARGS)
    topic = helpers.unique_topic("compact-empty")
    helpers.create_topic(b.bootstrap, topic, 1, COMPACT)
    idempotent = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "linger.ms": 0})
    plain = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": False, "acks": "all", "linger.ms": 0})
    offsets = {}

    def send(p, key: str, value: str) -> None:
        def done(err, msg):
            assert err is None, err
            offsets[key] = msg.offset()

        p.produce(topic, key=key.encode(), value=value.encode(), on_delivery=done)
        p.flush(30)

    send(idempotent, "a", "from the idempotent producer")
    send(plain, "a", "newer")
    newest = offsets["a"]

    def compacted():
        send(plain, "tick", "x")
        got = [r for r in read_all(b.bootstrap, topic) if r[1] != "tick"]
        return got == [(newest, "a", "newer")]

    helpers.wait_until(compacted, 30, "the idempotent producer's record compacted away", interval=0.1)
    # On disk its batch is still there, with no record: (base offset, producer id, records).
    headers = stored_batches(b.data_dir, topic)
    assert headers[0][0] == 0 and headers[0][1] >= 0 and headers[0][2] == 0, headers[:3]
    send(idempotent, "b", "after compaction")
    assert [r for r in read_all(b.bootstrap, topic) if r[1] == "b"] == [(offsets["b"], "b", "after compaction")]
