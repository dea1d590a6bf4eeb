"""kafka-python and aiokafka group consumers: two members split a topic, commit what they
processed; a later member of the group resumes exactly from those commits."""

from __future__ import annotations

import asyncio
import threading

import helpers

PARTITIONS = 4
GROUP_TIMEOUTS = {"session_timeout_ms": helpers.GROUP_SESSION_MS, "heartbeat_interval_ms": helpers.GROUP_HEARTBEAT_MS}


class MemberThreads:
    """Runs member(stop, out) bodies in threads; stop() ends them and re-raises their errors."""

    def __init__(self, bodies):
        self.stop_event = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._guard, args=(body,), daemon=True) for body in bodies]
        for t in self.threads:
            t.start()

    def _guard(self, body) -> None:
        try:
            body(self.stop_event)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread in stop()
            self.errors.append(e)

    def check(self) -> None:
        if self.errors:
            raise self.errors[0]

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(60)
            assert not t.is_alive(), "a member did not stop within 60 s"
        self.check()


def kafka_python_members(bootstrap: str, group: str, topic: str, n: int, out: list) -> MemberThreads:
    from kafka import KafkaConsumer

    def member(stop: threading.Event) -> None:
        c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                          enable_auto_commit=False, **GROUP_TIMEOUTS)
        try:
            while not stop.is_set():
                batch = c.poll(timeout_ms=100)
                out.extend(r.value.decode() for rs in batch.values() for r in rs)
                if batch:
                    c.commit()
        finally:
            c.close()

    return MemberThreads([member] * n)


def aiokafka_members(bootstrap: str, group: str, topic: str, n: int, out: list) -> MemberThreads:
    from aiokafka import AIOKafkaConsumer

    async def member(stop: threading.Event) -> None:
        c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, **GROUP_TIMEOUTS)
        await c.start()
        try:
            while not stop.is_set():
                batch = await c.getmany(timeout_ms=100)
                out.extend(r.value.decode() for rs in batch.values() for r in rs)
                if batch:
                    await c.commit()
        finally:
            await c.stop()

    def all_members(stop: threading.Event) -> None:
        async def main():
            await asyncio.gather(*(member(stop) for _ in range(n)))

        asyncio.run(main())

    return MemberThreads([all_members])


def check_group_consumes_then_resumes(bootstrap: str, spawn, prefix: str) -> None:
    topic = helpers.new_topic(bootstrap, PARTITIONS, prefix)
    group = helpers.unique_group(prefix)
    everything = {(topic, p) for p in range(PARTITIONS)}

    consumed: list[str] = []
    members = spawn(bootstrap, group, topic, 2, consumed)
    try:
        def split():
            members.check()
            parts = helpers.member_partitions(helpers.describe_group(bootstrap, group))
            return len(parts) == 2 and all(parts) and helpers.is_partitioned(parts, everything)

        helpers.wait_until(split, 60, "two members to split the topic")
        produced = helpers.produce_ids(bootstrap, topic, range(2000), PARTITIONS)
        helpers.wait_until(lambda: members.check() or produced <= set(consumed), 60, "every record consumed")
    finally:
        members.stop()
    helpers.assert_all_consumed(produced, consumed, prefix)
    helpers.wait_commits_at_end(bootstrap, group, topic, PARTITIONS)

    more = helpers.produce_ids(bootstrap, topic, range(2000, 2500), PARTITIONS)
    resumed: list[str] = []
    members = spawn(bootstrap, group, topic, 1, resumed)
    try:
        helpers.wait_until(lambda: members.check() or more <= set(resumed), 60, "the new records consumed")
    finally:
        members.stop()
    assert set(resumed) == more, f"{len(set(resumed) - more)} records before the commits were read again"
    helpers.wait_commits_at_end(bootstrap, group, topic, PARTITIONS)


def test_kafka_python_group(group_broker):
    check_group_consumes_then_resumes(group_broker.bootstrap, kafka_python_members, "kp-group")


def test_aiokafka_group(group_broker):
    check_group_consumes_then_resumes(group_broker.bootstrap, aiokafka_members, "aio-group")
