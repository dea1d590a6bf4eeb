"""kafka-python (pure Python client)."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

import helpers


def test_admin_create_list_delete_topics(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="jet-compat-kp", request_timeout_ms=30000)
    try:
        t = helpers.unique_topic("kp-admin")
        a.create_topics([NewTopic(name=t, num_partitions=3, replication_factor=1)], timeout_ms=30000)
        helpers.wait_until(lambda: helpers.topic_partitions_ready(broker.bootstrap, t, 3), 30, "topic leaders")
        assert t in a.list_topics()
        desc = {d["name"]: d for d in a.describe_topics([t])}
        assert desc[t]["error_code"] == 0
        assert sorted(p["partition_index"] for p in desc[t]["partitions"]) == [0, 1, 2]
        assert all(p["error_code"] == 0 and p["leader_id"] == 1 for p in desc[t]["partitions"])

        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([NewTopic(name=t, num_partitions=1, replication_factor=1)], timeout_ms=30000)

        a.delete_topics([t], timeout_ms=30000)
        helpers.wait_until(lambda: t not in a.list_topics(), 30, f"{t} to disappear")
    finally:
        a.close()


def test_produce_consume_assign_keys_headers_timestamps(broker, topic):
    t = topic(partitions=2)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5)
    base = helpers.recent_base_ms()
    expected = {0: [], 1: []}
    futures = []
    for i in range(500):
        part = i % 2
        key = None if i % 50 == 0 else f"key-{i}".encode()
        value = f"value-{i}".encode() if i % 77 else b""
        headers = [("h-int", str(i).encode()), ("h-bin", bytes([i % 256, 0, 255]))]
        futures.append((part, p.send(t, value=value, key=key, headers=headers, partition=part, timestamp_ms=base + i)))
        expected[part].append((key, value, headers, base + i))
    p.flush(30)
    for idx, (part, f) in enumerate(futures):
        md = f.get(timeout=30)
        assert md.partition == part
        assert md.offset == idx // 2, (idx, md.offset)
    p.close()

    c = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        consumer_timeout_ms=30000,
    )
    try:
        tps = [TopicPartition(t, 0), TopicPartition(t, 1)]
        c.assign(tps)
        for tp in tps:
            c.seek(tp, 0)
        got = {0: [], 1: []}
        end = time.monotonic() + 60
        while sum(map(len, got.values())) < 500 and time.monotonic() < end:
            for tp, recs in c.poll(timeout_ms=500).items():
                got[tp.partition].extend(recs)
        for part in (0, 1):
            assert len(got[part]) == len(expected[part]), (part, len(got[part]))
            for off, (r, (key, value, headers, ts)) in enumerate(zip(got[part], expected[part])):
                assert r.offset == off
                assert r.key == key
                assert r.value == value
                assert list(r.headers) == headers, (off, r.headers)
                assert r.timestamp == ts and r.timestamp_type == 0, (off, r.timestamp, r.timestamp_type)

        # seek into the middle
        c.seek(TopicPartition(t, 1), 200)
        recs = []
        end = time.monotonic() + 30
        while len(recs) < 50 and time.monotonic() < end:
            recs.extend(c.poll(timeout_ms=500).get(TopicPartition(t, 1), []))
        assert [r.offset for r in recs] == list(range(200, 250))
        assert [r.value for r in recs] == [expected[1][o][1] for o in range(200, 250)]

        assert c.beginning_offsets(tps) == {tps[0]: 0, tps[1]: 0}
        assert c.end_offsets(tps) == {tps[0]: 250, tps[1]: 250}
        r = c.offsets_for_times({tps[0]: base + 100})
        assert r[tps[0]].offset == 50 and r[tps[0]].timestamp == base + 100
    finally:
        c.close()
