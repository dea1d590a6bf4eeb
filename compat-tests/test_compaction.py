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
