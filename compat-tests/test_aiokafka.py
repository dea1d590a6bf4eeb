"""aiokafka (asyncio client)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import helpers


def test_admin_create_delete_topics(broker):
    async def main():
        a = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
        await a.start()
        try:
            t = helpers.unique_topic("aio-admin")
            resp = await a.create_topics([NewTopic(name=t, num_partitions=2, replication_factor=1)], timeout_ms=30000)
            errs = [e[1] for e in resp.topic_errors]
            assert errs == [0], resp
            await _poll_async(lambda: helpers.topic_partitions_ready(broker.bootstrap, t, 2), "topic leaders")
            assert t in await a.list_topics()

            resp = await a.create_topics([NewTopic(name=t, num_partitions=1, replication_factor=1)], timeout_ms=30000)
            assert [e[1] for e in resp.topic_errors] == [36], resp  # TOPIC_ALREADY_EXISTS

            resp = await a.delete_topics([t], timeout_ms=30000)
            assert [e[1] for e in resp.topic_error_codes] == [0], resp

            async def gone():
                return t not in await a.list_topics()

            await _poll_async(gone, f"{t} to disappear")
        finally:
            await a.close()

    asyncio.run(main())


def test_produce_consume_assign_keys_headers_timestamps(broker, topic):
    t = topic()
    base = helpers.recent_base_ms()
    n = 400

    async def main():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5)
        await p.start()
        expected = []
        try:
            futs = []
            for i in range(n):
                key = f"k{i}".encode() if i % 10 else None
                value = f"aio-{i}".encode()
                headers = [("n", str(i).encode()), ("src", b"aiokafka")]
                futs.append(await p.send(t, value=value, key=key, partition=0, timestamp_ms=base + i * 2, headers=headers))
                expected.append((key, value, headers, base + i * 2))
            mds = await asyncio.gather(*futs)
            assert [m.offset for m in mds] == list(range(n))
            # send_and_wait on a single record
            md = await p.send_and_wait(t, b"last", key=b"lk", partition=0, timestamp_ms=base + 10_000)
            assert md.offset == n
            expected.append((b"lk", b"last", [], base + 10_000))
        finally:
            await p.stop()

        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="none")
        await c.start()
        try:
            tp = TopicPartition(t, 0)
            c.assign([tp])
            c.seek(tp, 0)
            got = []
            end = time.monotonic() + 60
            while len(got) < n + 1 and time.monotonic() < end:
                batch = await c.getmany(tp, timeout_ms=500)
                got.extend(batch.get(tp, []))
            assert len(got) == n + 1
            for off, (r, (key, value, headers, ts)) in enumerate(zip(got, expected)):
                assert r.offset == off
                assert r.key == key
                assert r.value == value
                assert list(r.headers) == headers, (off, r.headers)
                assert r.timestamp == ts and r.timestamp_type == 0, (off, r.timestamp, r.timestamp_type)

            c.seek(tp, 123)
            r = await asyncio.wait_for(c.getone(tp), 30)
            assert (r.offset, r.value) == (123, b"aio-123")

            assert await c.beginning_offsets([tp]) == {tp: 0}
            assert await c.end_offsets([tp]) == {tp: n + 1}
            ot = await c.offsets_for_times({tp: base + 21})
            assert ot[tp].offset == 11 and ot[tp].timestamp == base + 22
        finally:
            await c.stop()

    asyncio.run(main())


async def _poll_async(cond, what, deadline_s=30.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        v = cond()
        if asyncio.iscoroutine(v):
            v = await v
        if v:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")
