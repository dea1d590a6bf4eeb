"""kafkajs (npm, pinned in js/package.json + js/package-lock.json), driven as a Node subprocess.

kafkajs' Consumer always joins a consumer group (no assign-only mode), so nothing here consumes
with kafkajs: what kafkajs produced is read back with confluent-kafka (assign + seek) and
compared record by record. The kafkajs consumer group is in test_groups_kafkajs.py.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict

import pytest

import helpers


@pytest.mark.parametrize("scenario", ["admin", "offsets"])
def test_kafkajs_scenario(broker, kafkajs_main, scenario):
    helpers.run_scenario(kafkajs_main, broker.bootstrap, scenario)


def _b(v):
    return None if v is None else base64.b64decode(v)


def test_kafkajs_produce_read_back_with_confluent_kafka(broker, kafkajs_main):
    from confluent_kafka import TIMESTAMP_CREATE_TIME

    out = helpers.run_scenario(kafkajs_main, broker.bootstrap, "produce")
    lines = [ln for ln in out.splitlines() if ln.startswith("EXPECT ")]
    assert len(lines) == 1, out[-2000:]
    spec = json.loads(lines[0][len("EXPECT ") :])
    topic, records = spec["topic"], spec["records"]

    # what main.js claims to have sent must cover the matrix this test is about
    assert len(records) == 2 * 2 * 2 * 12 + 1, len(records)
    assert {(r["producer"], r["codec"]) for r in records} >= {(p, c) for p in ("idempotent", "default") for c in ("none", "gzip")}
    assert any(r["key"] is None for r in records) and any(r["value"] is None for r in records)
    assert any(len(r["headers"]) == 0 for r in records) and any(len(r["headers"]) == 5 for r in records)

    by_part = defaultdict(list)
    for r in records:
        by_part[r["partition"]].append(r)
    assert set(by_part) == set(range(spec["partitions"])), sorted(by_part)

    for part, want in sorted(by_part.items()):
        assert [r["offset"] for r in want] == list(range(len(want))), f"partition {part}: acknowledged offsets not dense from 0"
        got = helpers.ck_consume_all(broker.bootstrap, topic, part, len(want))
        for w, m in zip(want, got):
            where = f"{topic}[{part}]@{w['offset']} ({w['producer']}, {w['codec']})"
            assert m.offset() == w["offset"], where
            assert m.key() == _b(w["key"]), where
            assert m.value() == _b(w["value"]), where
            assert m.timestamp() == (TIMESTAMP_CREATE_TIME, w["timestamp"]), where
            assert list(m.headers() or []) == [(k, _b(v)) for k, v in w["headers"]], where

        # assign at a middle offset (seek), then an explicit seek back within the same consumer
        mid = len(want) // 2
        tail = helpers.ck_consume_all(broker.bootstrap, topic, part, len(want) - mid, start_offset=mid)
        assert [(m.offset(), m.value()) for m in tail] == [(w["offset"], _b(w["value"])) for w in want[mid:]]

    _seek_within_consumer(broker.bootstrap, topic, by_part[0])

    # watermarks seen by confluent-kafka agree with what kafkajs was told
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "jet-compat-unused", "enable.auto.commit": False})
    try:
        for part, want in by_part.items():
            assert c.get_watermark_offsets(TopicPartition(topic, part), timeout=30) == (0, len(want))
    finally:
        c.close()


def _seek_within_consumer(bootstrap, topic, want):
    """assign at 0, read 3, seek to the last record, read it: exact record."""
    import time

    from confluent_kafka import Consumer, KafkaError, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "jet-compat-unused",  # required by the client; no group APIs are used with assign()
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
        }
    )

    def next_msg():
        end = time.monotonic() + 30
        while time.monotonic() < end:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(f"consumer error: {m.error()}")
            return m
        raise TimeoutError(f"no message from {topic}[0] within 30 s")

    try:
        c.assign([TopicPartition(topic, 0, 0)])
        assert [next_msg().offset() for _ in range(3)] == [0, 1, 2]
        last = want[-1]
        c.seek(TopicPartition(topic, 0, last["offset"]))
        m = next_msg()
        assert (m.offset(), m.key(), m.value()) == (last["offset"], _b(last["key"]), _b(last["value"]))
    finally:
        c.close()
