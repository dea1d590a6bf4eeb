"""Crash/restart durability: SIGKILL jet mid-produce, restart on the same data dir and port."""

from __future__ import annotations

from confluent_kafka import Producer

import helpers


def _read_all(bootstrap: str, topic: str) -> list:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "jet-compat-unused", "enable.auto.commit": False})
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=30, cached=False)
    finally:
        c.close()
    assert lo == 0, f"log start offset {lo} after restart (expected 0)"
    return helpers.ck_consume_all(bootstrap, topic, 0, hi) if hi else []


def test_sigkill_mid_produce_every_acked_record_once_in_order(fresh_broker):
    b = fresh_broker
    topic = helpers.unique_topic("restart")
    helpers.create_topic(b.bootstrap, topic, 1)

    p = Producer(
        {
            "bootstrap.servers": b.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
            "batch.num.messages": 200,
            "queue.buffering.max.messages": 20000,
            "message.timeout.ms": 120000,
            "retry.backoff.ms": 50,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
        }
    )
    acked: list[tuple[int, int]] = []  # (seq, offset)
    failed: list[tuple[int, str]] = []

    def on_delivery(err, msg):
        seq = int(msg.value().split(b"-")[1])
        if err is None:
            acked.append((seq, msg.offset()))
        else:
            failed.append((seq, str(err)))

    def produce(i: int) -> None:
        while True:
            try:
                p.produce(topic, value=f"rec-{i:08d}".encode(), key=str(i).encode(), partition=0, on_delivery=on_delivery)
                return
            except BufferError:  # local queue full: serve callbacks, then retry
                p.poll(0.05)

    i = 0
    # phase 1: produce until 3000 acks are in while more are in flight, then SIGKILL
    killed_at = None
    while True:
        # keep at most ~2000 records un-acknowledged so the kill lands mid-stream
        while i - len(acked) - len(failed) >= 2000:
            p.poll(0.01)
        produce(i)
        i += 1
        p.poll(0)
        if len(acked) >= 3000:
            killed_at = i
            b.kill9()  # records i-N..i are in flight / queued right now
            break
        if i > 200_000:
            raise AssertionError(f"only {len(acked)} acks after {i} produced")
    acked_before_kill = len(acked)
    # phase 2: keep producing while the broker is down (queued in the client)
    for _ in range(1000):
        produce(i)
        i += 1
    p.poll(0)
    b.start()  # same data dir, same port; waits for ApiVersions+Metadata readiness
    remaining = p.flush(120)
    assert remaining == 0, f"{remaining} records still undelivered 120s after restart"
    assert acked_before_kill >= 3000
    assert not failed, f"{len(failed)} delivery failures, first: {failed[:3]}"
    assert len(acked) == i, (len(acked), i)

    records = _read_all(b.bootstrap, topic)
    seqs = [int(m.value().split(b"-")[1]) for m in records]
    offsets = [m.offset() for m in records]
    assert offsets == list(range(len(records))), "log offsets are not contiguous from 0"
    counts: dict[int, int] = {}
    for s in seqs:
        counts[s] = counts.get(s, 0) + 1
    missing = [s for s, _ in acked if s not in counts]
    dups = sorted(s for s, c in counts.items() if c > 1)
    assert not missing, f"{len(missing)} acknowledged records lost after SIGKILL+restart, e.g. {missing[:10]} (killed after {killed_at} produced)"
    assert not dups, f"{len(dups)} records duplicated after SIGKILL+restart, e.g. {dups[:10]}"
    assert seqs == sorted(seqs), "records are out of order in the log after restart"
    # every ack's offset is where the record actually is
    pos = {s: o for o, s in zip(offsets, seqs)}
    wrong = [(s, o, pos[s]) for s, o in acked if pos[s] != o]
    assert not wrong, f"acked offsets differ from log positions (seq, acked, actual): {wrong[:10]}"


def test_sigterm_restart_keeps_data_and_continues_offsets(fresh_broker):
    b = fresh_broker
    topic = helpers.unique_topic("restart-clean")
    helpers.create_topic(b.bootstrap, topic, 1)
    base = helpers.recent_base_ms()
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(1000):
        p.produce(topic, value=f"a{i}".encode(), partition=0, timestamp=base + i, headers=[("h", str(i).encode())])
    assert p.flush(30) == 0
    del p

    code = b.stop()
    assert code == 0, f"jet exited {code} on SIGTERM\n{b.log_since(0)}"
    b.start()
    # topic metadata survives the restart
    helpers.wait_until(lambda: helpers.topic_partitions_ready(b.bootstrap, topic, 1), 30, "topic after restart")

    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})
    offs = []
    for i in range(1000, 1100):
        p.produce(topic, value=f"a{i}".encode(), partition=0, timestamp=base + i, headers=[("h", str(i).encode())],
                  on_delivery=lambda err, m: offs.append(m.offset() if err is None else str(err)))
    assert p.flush(30) == 0
    assert offs == list(range(1000, 1100)), offs[:5]

    msgs = _read_all(b.bootstrap, topic)
    assert [(m.offset(), m.value(), m.timestamp()[1], m.headers()) for m in msgs] == [
        (i, f"a{i}".encode(), base + i, [("h", str(i).encode())]) for i in range(1100)
    ]

    # and once more after a SIGKILL with everything flushed
    b.kill_and_restart()
    msgs = _read_all(b.bootstrap, topic)
    assert [(m.offset(), m.value()) for m in msgs] == [(i, f"a{i}".encode()) for i in range(1100)]


def test_topic_metadata_survives_sigkill_restart(fresh_broker):
    """Topic configs, added partitions and topic deletions survive SIGKILL + restart."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, ResourceType

    b = fresh_broker
    keep = helpers.unique_topic("keep")
    gone = helpers.unique_topic("gone")
    helpers.create_topic(b.bootstrap, keep, 1, {"retention.ms": "987654321", "max.message.bytes": "3000000"})
    helpers.create_topic(b.bootstrap, gone, 2)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_partitions([NewPartitions(keep, 3)])[keep].result(timeout=60)
    helpers.wait_until(lambda: helpers.topic_partitions_ready(b.bootstrap, keep, 3), 30, "3 partitions")
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    for part in range(3):
        for i in range(100):
            p.produce(keep, value=f"p{part}-{i}".encode(), partition=part)
    assert p.flush(30) == 0
    a.delete_topics([gone], operation_timeout=30)[gone].result(timeout=60)
    helpers.wait_until(lambda: gone not in a.list_topics(timeout=10).topics, 30, f"{gone} deleted")
    del a, p

    b.kill_and_restart()

    a = AdminClient({"bootstrap.servers": b.bootstrap})
    md = a.list_topics(timeout=30)
    assert gone not in md.topics, f"deleted topic {gone} came back after restart"
    assert keep in md.topics and sorted(md.topics[keep].partitions) == [0, 1, 2], md.topics.get(keep)
    res = ConfigResource(ResourceType.TOPIC, keep)
    cfg = a.describe_configs([res])[res].result(timeout=30)
    assert cfg["retention.ms"].value == "987654321"
    assert cfg["max.message.bytes"].value == "3000000"
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "jet-compat-unused"})
    try:
        for part in (0, 1, 2):
            assert c.get_watermark_offsets(TopicPartition(keep, part), timeout=30, cached=False) == (0, 100)
    finally:
        c.close()
    msgs = helpers.ck_consume_all(b.bootstrap, keep, 2, 100)
    assert [m.value() for m in msgs] == [f"p2-{i}".encode() for i in range(100)]


def test_delete_records_low_watermark_survives_sigkill(fresh_broker):
    """An acknowledged DeleteRecords must not be undone by a crash.

    Stricter than Apache Kafka: Kafka writes log-start-offset-checkpoint only every
    log.flush.start.offset.checkpoint.interval.ms (60 s), so after a SIGKILL within that
    window Kafka 4.1 reports log start 0 again (seen with kafka-ref/jet-shim.sh).
    """
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient

    b = fresh_broker
    t = helpers.unique_topic("dr-restart")
    helpers.create_topic(b.bootstrap, t, 1)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    for i in range(100):
        p.produce(t, value=f"r{i}".encode(), partition=0)
    assert p.flush(30) == 0
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    low = list(a.delete_records([TopicPartition(t, 0, 40)]).values())[0].result(timeout=60)
    assert low.low_watermark == 40, low
    del a, p

    b.kill_and_restart()

    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "jet-compat-unused"})
    try:
        assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=30, cached=False) == (40, 100)
    finally:
        c.close()
    msgs = helpers.ck_consume_all(b.bootstrap, t, 0, 60, start_offset=40)
    assert [(m.offset(), m.value()) for m in msgs] == [(i, f"r{i}".encode()) for i in range(40, 100)]
