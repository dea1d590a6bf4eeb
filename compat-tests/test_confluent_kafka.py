"""confluent-kafka (Python, bundled recent librdkafka)."""

from __future__ import annotations

import warnings

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

import helpers


def admin(broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def test_library_versions():
    import confluent_kafka

    assert confluent_kafka.__version__ == "2.16.1"
    assert confluent_kafka.libversion()[0].startswith("2.")


def test_admin_create_describe_delete_topics(broker):
    a = admin(broker)
    t = helpers.unique_topic("ck-admin")
    configs = {"retention.ms": "123456789", "cleanup.policy": "delete", "max.message.bytes": "2000000"}
    fs = a.create_topics([NewTopic(t, num_partitions=4, replication_factor=1, config=configs)], operation_timeout=30)
    assert fs[t].result(timeout=60) is None
    helpers.wait_until(lambda: helpers.topic_partitions_ready(broker.bootstrap, t, 4), 30, "topic leaders")

    md = a.list_topics(timeout=30)
    assert t in md.topics
    assert sorted(md.topics[t].partitions) == [0, 1, 2, 3]
    assert all(p.leader == 1 and p.replicas == [1] and p.isrs == [1] for p in md.topics[t].partitions.values())
    assert 1 in md.brokers and f"{md.brokers[1].host}:{md.brokers[1].port}" == broker.bootstrap

    # creating it again fails with TOPIC_ALREADY_EXISTS
    fs = a.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)], operation_timeout=30)
    with pytest.raises(KafkaException) as ei:
        fs[t].result(timeout=60)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, ei.value

    # describe_configs (topic): the configs we set, reported as dynamic topic configs
    res = ConfigResource(ResourceType.TOPIC, t)
    entries = a.describe_configs([res])[res].result(timeout=30)
    for k, v in configs.items():
        assert k in entries, f"{k} missing from describe_configs({t}): {sorted(entries)}"
        assert entries[k].value == v, (k, entries[k].value)
        assert entries[k].source == 1, (k, entries[k].source)  # DYNAMIC_TOPIC_CONFIG
        assert not entries[k].is_default, k

    # delete_topics; then it is gone from metadata
    fs = a.delete_topics([t], operation_timeout=30)
    assert fs[t].result(timeout=60) is None
    helpers.wait_until(lambda: t not in admin(broker).list_topics(timeout=10).topics, 30, f"{t} to disappear")

    # deleting an unknown topic fails with UNKNOWN_TOPIC_OR_PART
    fs = a.delete_topics([helpers.unique_topic("nope")], operation_timeout=30)
    with pytest.raises(KafkaException) as ei:
        list(fs.values())[0].result(timeout=60)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, ei.value


def _topic_configs(a: AdminClient, t: str) -> dict:
    res = ConfigResource(ResourceType.TOPIC, t)
    return a.describe_configs([res])[res].result(timeout=30)


def test_admin_alter_and_incremental_alter_configs(broker):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

    a = admin(broker)
    t = helpers.unique_topic("ck-alter")
    fs = a.create_topics([NewTopic(t, num_partitions=1, replication_factor=1, config={"retention.ms": "1000000"})], operation_timeout=30)
    fs[t].result(timeout=60)

    # incremental: SET one, APPEND to a list config, others untouched
    res = ConfigResource(ResourceType.TOPIC, t, incremental_configs=[
        ConfigEntry("segment.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    a.incremental_alter_configs([res])[res].result(timeout=30)
    e = _topic_configs(a, t)
    assert e["segment.ms"].value == "3600000" and e["segment.ms"].source == 1
    assert e["cleanup.policy"].value == "delete,compact"
    assert e["retention.ms"].value == "1000000"

    # incremental DELETE reverts to the default
    res = ConfigResource(ResourceType.TOPIC, t, incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    a.incremental_alter_configs([res])[res].result(timeout=30)
    e = _topic_configs(a, t)
    assert e["retention.ms"].value == "604800000" and e["retention.ms"].is_default

    # an invalid value is refused with INVALID_CONFIG and changes nothing
    res = ConfigResource(ResourceType.TOPIC, t, incremental_configs=[
        ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET),
    ])
    with pytest.raises(KafkaException) as ei:
        a.incremental_alter_configs([res])[res].result(timeout=30)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG, ei.value
    assert _topic_configs(a, t)["retention.ms"].is_default

    # legacy AlterConfigs replaces the whole override set
    res = ConfigResource(ResourceType.TOPIC, t, set_config={"max.message.bytes": "5000"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy API is the point here
        a.alter_configs([res])[res].result(timeout=30)
    e = _topic_configs(a, t)
    assert e["max.message.bytes"].value == "5000" and e["max.message.bytes"].source == 1
    assert e["segment.ms"].is_default and e["cleanup.policy"].value == "delete"

    # and the new max.message.bytes is enforced on produce
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "none", "batch.num.messages": 1})
    errors = []
    p.produce(t, value=b"x" * 6000, on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, errors


def test_admin_describe_broker_configs(broker):
    a = admin(broker)
    res = ConfigResource(ResourceType.BROKER, "1")
    entries = a.describe_configs([res])[res].result(timeout=30)
    assert entries, "describe_configs(broker 1) returned no entries"
    for k in ("num.partitions", "auto.create.topics.enable"):
        assert k in entries, f"{k} missing from broker configs: {sorted(entries)[:50]}"
    assert entries["num.partitions"].value == "1"
    assert entries["auto.create.topics.enable"].value == "true"


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_idempotent_producer_each_codec(broker, topic, codec):
    t = topic(partitions=2)
    p = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "enable.idempotence": True,
            "compression.type": codec,
            "linger.ms": 20,
            "batch.num.messages": 500,
        }
    )
    n = 3000
    base_ts = helpers.recent_base_ms()
    acked: dict[int, list] = {0: [], 1: []}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[msg.partition()].append((msg.offset(), msg.key(), msg.value()))

    expected = {0: [], 1: []}
    for i in range(n):
        part = i % 2
        key = f"k{i}".encode()
        value = (f"{codec}-{i}-" + "z" * (i % 97)).encode()
        headers = [("idx", str(i).encode()), ("codec", codec.encode()), ("nullh", None)]
        p.produce(t, key=key, value=value, partition=part, timestamp=base_ts + i, headers=headers, on_delivery=on_delivery)
        expected[part].append((key, value, base_ts + i, headers))
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    assert not errors, errors[:5]

    for part in (0, 1):
        offs = [o for o, _, _ in acked[part]]
        assert offs == list(range(len(expected[part]))), f"partition {part}: acked offsets not 0..n-1 in order"
        msgs = helpers.ck_consume_all(broker.bootstrap, t, part, len(expected[part]))
        for off, (m, (key, value, ts, headers)) in enumerate(zip(msgs, expected[part])):
            assert m.offset() == off
            assert m.key() == key
            assert m.value() == value
            assert m.timestamp() == (1, ts), (off, m.timestamp())  # TIMESTAMP_CREATE_TIME
            assert m.headers() == headers, (off, m.headers())


def test_consumer_assign_and_seek(broker, topic):
    t = topic()
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(1000):
        p.produce(t, key=str(i).encode(), value=f"val-{i}".encode(), partition=0)
    assert p.flush(30) == 0

    c = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "jet-compat-unused",  # required by librdkafka; no group APIs used with assign()
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
        }
    )
    try:
        c.assign([TopicPartition(t, 0, 500)])
        got = _poll_n(c, 10)
        assert [(m.offset(), m.value()) for m in got] == [(500 + i, f"val-{500 + i}".encode()) for i in range(10)]

        c.seek(TopicPartition(t, 0, 42))
        got = _poll_n(c, 3)
        assert [(m.offset(), m.key(), m.value()) for m in got] == [(42 + i, str(42 + i).encode(), f"val-{42 + i}".encode()) for i in range(3)]

        c.seek(TopicPartition(t, 0, 999))
        got = _poll_n(c, 1)
        assert (got[0].offset(), got[0].value()) == (999, b"val-999")

        lo, hi = c.get_watermark_offsets(TopicPartition(t, 0), timeout=10, cached=False)
        assert (lo, hi) == (0, 1000)
        assert c.position([TopicPartition(t, 0)])[0].offset == 1000
    finally:
        c.close()


def test_offsets_for_times(broker, topic):
    t = topic()
    base = helpers.recent_base_ms()
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i in range(20):
        p.produce(t, value=f"v{i}".encode(), partition=0, timestamp=base + i * 10)
    assert p.flush(30) == 0

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "jet-compat-unused", "enable.auto.commit": False})
    try:
        for query, want in [(base, 0), (base + 55, 6), (base + 60, 6), (base + 190, 19), (base - 1, 0), (base + 191, -1)]:
            r = c.offsets_for_times([TopicPartition(t, 0, query)], timeout=30)
            assert r[0].error is None, r[0].error
            assert r[0].offset == want, (query, r[0].offset, want)
    finally:
        c.close()


def _poll_n(c: Consumer, n: int, deadline_s: float = 30.0):
    out = []

    def step():
        m = c.poll(0.5)
        if m is not None:
            if m.error():
                raise AssertionError(f"consumer error: {m.error()}")
            out.append(m)
        return len(out) >= n

    helpers.wait_until(step, deadline_s, f"{n} messages", interval=0)
    return out


def test_null_vs_empty_keys_and_values(broker, topic):
    t = topic()
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    rows = [(None, None), (b"", b""), (None, b""), (b"", None), (b"k", None), (None, b"v")]
    for k, v in rows:
        p.produce(t, key=k, value=v, partition=0)
    assert p.flush(30) == 0
    msgs = helpers.ck_consume_all(broker.bootstrap, t, 0, len(rows))
    assert [(m.key(), m.value()) for m in msgs] == rows


def test_large_message_roundtrip_and_oversized_rejected(broker, topic):
    t = topic()
    big = bytes(range(256)) * 3500  # 896,000 bytes: under the 1 MiB default max.message.bytes
    p = Producer({"bootstrap.servers": broker.bootstrap, "message.max.bytes": 4_000_000, "linger.ms": 0, "compression.type": "none"})
    res = []
    p.produce(t, value=big, key=b"big", partition=0, on_delivery=lambda e, m: res.append(e))
    assert p.flush(30) == 0
    assert res == [None], res
    m = helpers.ck_consume_all(broker.bootstrap, t, 0, 1)[0]
    assert (m.key(), m.value()) == (b"big", big)

    res.clear()
    p.produce(t, value=b"x" * 2_000_000, partition=0, on_delivery=lambda e, m: res.append(e))
    assert p.flush(30) == 0
    assert len(res) == 1 and res[0] is not None and res[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, res
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "jet-compat-unused"})
    try:
        assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=30, cached=False) == (0, 1)
    finally:
        c.close()


def test_fetch_at_out_of_range_offset_is_an_error(broker, topic):
    t = topic()
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        p.produce(t, value=str(i).encode(), partition=0)
    assert p.flush(30) == 0
    c = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "jet-compat-unused",
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
        }
    )
    try:
        c.assign([TopicPartition(t, 0, 1000)])
        seen = []

        def step():
            m = c.poll(0.5)
            if m is not None:
                seen.append(m)
            return any(x.error() is not None for x in seen)

        helpers.wait_until(step, 30, "an offset-out-of-range error", interval=0)
        err = next(x.error() for x in seen if x.error() is not None)
        assert err.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE), err
        assert "out of range" in err.str().lower(), err
        assert not [x for x in seen if x.error() is None], "got records from an out-of-range offset"
    finally:
        c.close()


def test_tiny_fetch_sizes_still_make_progress(broker, topic):
    """max.partition.fetch.bytes=1: the broker must still return the first batch (KIP-74)."""
    t = topic()
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "batch.num.messages": 1})
    for i in range(20):
        p.produce(t, value=f"tiny-{i}-".encode() + b"p" * 500, partition=0)
    assert p.flush(30) == 0
    msgs = helpers.ck_consume_all(broker.bootstrap, t, 0, 20, extra={"max.partition.fetch.bytes": 1, "fetch.max.bytes": 1024, "message.max.bytes": 1024, "receive.message.max.bytes": 2048})
    assert [m.value() for m in msgs] == [f"tiny-{i}-".encode() + b"p" * 500 for i in range(20)]
