"""Fetches whose size limit is not a multiple of the batch size.

Kafka answers a fetch with a byte slice of the segment file (`FileRecords.slice`) that ends at
the byte limit even inside a batch; clients drop the partial batch and fetch again from its
offset. Jet ends its responses at the last whole batch that fits (sent with `sendfile`), so
nothing is sent twice. Both are within the protocol: these tests check what both must do (a
prefix of the log, within the limit, the first batch whole under KIP-74) and that every client
consumes through such fetches, old librdkafka (kcat) included.
"""

from __future__ import annotations

import asyncio
import shutil
import struct

import pytest
from confluent_kafka import Producer

import helpers
import kproto
from kproto import Api, Array

# Fetch v4: the oldest version Kafka 4 serves, non-flexible, simple to read.
FETCH_V4 = Api(
    key=1,
    version=4,
    flexible=False,
    request=[
        ("replica_id", "int32"),
        ("max_wait_ms", "int32"),
        ("min_bytes", "int32"),
        ("max_bytes", "int32"),
        ("isolation_level", "int8"),
        ("topics", Array([("topic", "string"),
                          ("partitions", Array([("partition", "int32"), ("fetch_offset", "int64"),
                                                ("partition_max_bytes", "int32")]))])),
    ],
    response=[
        ("throttle_time_ms", "int32"),
        ("responses", Array([
            ("topic", "string"),
            ("partitions", Array([
                ("partition_index", "int32"),
                ("error_code", "int16"),
                ("high_watermark", "int64"),
                ("last_stable_offset", "int64"),
                ("aborted_transactions", Array([("producer_id", "int64"), ("first_offset", "int64")], nullable=True)),
                ("records", "nullable_bytes"),
            ])),
        ])),
    ],
)

GROUPS = 40
LIMIT = 1000  # bytes per partition per fetch: not a multiple of any batch size below


def values() -> list[list[bytes]]:
    """GROUPS batches of 1 to 5 records of varying sizes (each group is sent as one batch)."""
    return [[f"slice-{g}-{i}-".encode() + b"v" * (60 + 37 * ((g * 7 + i) % 9)) for i in range(g % 5 + 1)]
            for g in range(GROUPS)]


def expected() -> list[bytes]:
    return [v for group in values() for v in group]


def produce_batches(bootstrap: str, topic: str) -> list[int]:
    """Produces each group as its own batch; returns the batches' sizes in the log."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1000, "acks": "all"})
    for group in values():
        for v in group:
            p.produce(topic, value=v, partition=0)
        assert p.flush(30) == 0
    # The batch sizes as stored: walk the log through one unlimited raw fetch.
    host, port = helpers.split_bootstrap(bootstrap)
    with kproto.Conn(host, port) as c:
        records = fetch(c, topic, 0, 1 << 20)["records"]
    sizes, pos = [], 0
    while pos < len(records):
        (length,) = struct.unpack(">i", records[pos + 8:pos + 12])
        sizes.append(12 + length)
        pos += 12 + length
    assert len(sizes) == GROUPS and pos == len(records), f"{len(sizes)} batches, {pos} of {len(records)} bytes"
    return sizes


def fetch(c: kproto.Conn, topic: str, offset: int, limit: int) -> dict:
    r = c.call(FETCH_V4, replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=limit, isolation_level=0,
               topics=[dict(topic=topic, partitions=[dict(partition=0, fetch_offset=offset, partition_max_bytes=limit)])])
    part = r["responses"][0]["partitions"][0]
    assert part["error_code"] == 0, part
    return part


@pytest.fixture(scope="module")
def sliced(broker):
    """A topic of GROUPS batches, and their sizes."""
    t = helpers.unique_topic("slices")
    helpers.create_topic(broker.bootstrap, t, 1)
    return t, produce_batches(broker.bootstrap, t)


def test_a_fetch_is_a_prefix_of_the_log_within_the_limit(broker, sliced):
    t, sizes = sliced
    ends = [sum(sizes[:i + 1]) for i in range(len(sizes))]
    assert LIMIT not in ends, "the limit falls inside a batch"
    host, port = helpers.split_bootstrap(broker.bootstrap)
    with kproto.Conn(host, port) as c:
        log = fetch(c, t, 0, 1 << 20)["records"]
        for offset_batch in (0, 3, 17):
            offset = sum(len(g) for g in values()[:offset_batch])
            start = sum(sizes[:offset_batch])
            records = fetch(c, t, offset, LIMIT)["records"]
            # The first batch counts whole even when larger than the limit (KIP-74).
            limit = max(LIMIT, sizes[offset_batch])
            # Whole batches (Jet) or whole batches then part of the next one (Kafka).
            assert 0 < len(records) <= limit
            assert records == log[start:start + len(records)]
            assert start + len(records) >= max(e for e in ends if e <= start + limit)
        # A limit below the first batch still returns that batch whole (KIP-74).
        assert fetch(c, t, 0, 10)["records"] == log[:sizes[0]]


@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python", "aiokafka"])
def test_clients_consume_through_cut_batches(broker, sliced, client):
    t, _ = sliced
    want = expected()
    if client == "confluent-kafka":
        msgs = helpers.ck_consume_all(broker.bootstrap, t, 0, len(want), extra={
            "max.partition.fetch.bytes": LIMIT, "fetch.max.bytes": 1500, "message.max.bytes": 1500,
            "receive.message.max.bytes": 3000})
        got = [m.value() for m in msgs]
    elif client == "kafka-python":
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                          max_partition_fetch_bytes=LIMIT, fetch_max_bytes=1500)
        try:
            tp = TopicPartition(t, 0)
            c.assign([tp])
            c.seek(tp, 0)
            got = []
            helpers.wait_until(lambda: got.extend(m.value for recs in c.poll(200).values() for m in recs)
                               or len(got) >= len(want), 60, "kafka-python to consume")
        finally:
            c.close()
    else:
        got = asyncio.run(_aiokafka_consume(broker.bootstrap, t, len(want)))
    assert got == want


async def _aiokafka_consume(bootstrap: str, topic: str, count: int) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", max_partition_fetch_bytes=LIMIT, fetch_max_bytes=1500)
    await c.start()
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        got: list[bytes] = []
        async with asyncio.timeout(60):
            while len(got) < count:
                for recs in (await c.getmany(tp, timeout_ms=500)).values():
                    got.extend(m.value for m in recs)
        return got
    finally:
        await c.stop()


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (run compat-tests/run.sh)")
def test_old_librdkafka_kcat_consumes_through_cut_batches(broker, sliced):
    t, _ = sliced
    out = helpers.run(["kcat", "-b", broker.bootstrap, "-X", "api.version.request=true", "-C", "-t", t, "-p", "0",
                       "-o", "beginning", "-e", "-q", "-f", "%s\\n",
                       "-X", f"fetch.message.max.bytes={LIMIT}", "-X", "fetch.max.bytes=1500",
                       "-X", "message.max.bytes=1500", "-X", "receive.message.max.bytes=3000"], timeout=120)
    assert out.stdout.splitlines() == expected()
