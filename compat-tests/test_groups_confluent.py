"""confluent-kafka (librdkafka 2.16) consumer groups: membership churn under load, commit
metadata, cooperative-sticky incremental rebalances."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, ConsumerGroupState, TopicPartition

import helpers

PARTITIONS = 6


class Members:
    """The consumers of one group, all polled from this thread (rebalance callbacks run in poll)."""

    def __init__(self, bootstrap: str, group: str, topic: str):
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self.everything = {(topic, p) for p in range(PARTITIONS)}
        self.active: dict[str, Consumer] = {}
        self.consumed: list[str] = []

    def join(self, name: str, on_assign=None, on_revoke=None, **conf) -> Consumer:
        c = Consumer(helpers.ck_group_conf(self.bootstrap, self.group, **conf))
        kw = {k: v for k, v in (("on_assign", on_assign), ("on_revoke", on_revoke)) if v}
        c.subscribe([self.topic], **kw)
        self.active[name] = c
        return c

    def leave(self, name: str) -> None:
        self.active.pop(name).close()  # commits what was consumed, then LeaveGroup

    def pump_until(self, cond, what: str, deadline_s: float = 60.0):
        end = time.monotonic() + deadline_s
        while True:
            for c in self.active.values():
                helpers.ck_drain(c, self.consumed)
            v = cond()
            if v:
                return v
            if time.monotonic() > end:
                raise AssertionError(f"timed out after {deadline_s}s waiting for {what}; assignments {self.assignments()}")

    def assignments(self) -> dict[str, set]:
        return {n: {(tp.topic, tp.partition) for tp in c.assignment()} for n, c in self.active.items()}

    def stable(self) -> bool:
        """Every member owns something, together they own each partition once, and the broker
        describes the group as Stable with exactly these member assignments."""
        own = list(self.assignments().values())
        if not all(own) or not helpers.is_partitioned(own, self.everything):
            return False
        d = helpers.describe_group(self.bootstrap, self.group)
        broker_view = helpers.member_partitions(d)
        return d.state == ConsumerGroupState.STABLE and sorted(map(sorted, broker_view)) == sorted(map(sorted, own))

    def wait_stable(self, what: str) -> dict[str, set]:
        self.pump_until(self.stable, f"a stable group after {what}")
        return self.assignments()


def test_three_consumers_join_and_leave_while_producing(group_broker):
    b = group_broker.bootstrap
    topic = helpers.new_topic(b, PARTITIONS, "ck-churn")
    g = Members(b, helpers.unique_group("ck-churn"), topic)
    prod = helpers.BackgroundProducer(b, topic, PARTITIONS)

    g.join("c1")
    assert g.wait_stable("c1 joined") == {"c1": g.everything}
    g.join("c2")
    g.wait_stable("c2 joined")
    g.join("c3")
    assert all(len(a) == 2 for a in g.wait_stable("c3 joined").values())
    g.leave("c1")
    g.wait_stable("c1 left")
    g.leave("c2")
    assert g.wait_stable("c2 left") == {"c3": g.everything}

    produced = prod.stop()
    assert len(produced) > 100, "the producer hardly ran during the rebalances"
    g.pump_until(lambda: produced <= set(g.consumed), "c3 to consume every acknowledged record")
    helpers.assert_all_consumed(produced, g.consumed)
    g.leave("c3")
    helpers.wait_commits_at_end(b, g.group, topic, PARTITIONS)


def test_commit_metadata_round_trips_and_positions_survive(group_broker):
    b = group_broker.bootstrap
    topic = helpers.new_topic(b, 2, "ck-meta")
    group = helpers.unique_group("ck-meta")
    helpers.produce_ids(b, topic, range(40), 2)  # 20 per partition
    c = Consumer(helpers.ck_group_conf(b, group, **{"enable.auto.commit": False}))
    c.subscribe([topic])
    helpers.wait_until(lambda: c.consume(1, 0.1) is not None and len(c.assignment()) == 2, 60, "both partitions assigned")
    # metadata: ASCII, non-ASCII and empty
    want = [TopicPartition(topic, 0, 3, metadata="checkpoint-α"), TopicPartition(topic, 1, 5, metadata="")]
    res = c.commit(offsets=want, asynchronous=False)
    assert [(tp.partition, tp.offset, tp.error) for tp in res] == [(0, 3, None), (1, 5, None)], res
    got = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=30)
    assert [(tp.partition, tp.offset, tp.metadata) for tp in got] == [(0, 3, "checkpoint-α"), (1, 5, "")], got
    c.close()

    assert helpers.committed_offsets(b, group) == {(topic, 0): 3, (topic, 1): 5}
    # a new member of the group starts where the commits point
    resumed = Consumer(helpers.ck_group_conf(b, group, **{"enable.auto.commit": False}))
    try:
        got = resumed.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=30)
        assert [(tp.offset, tp.metadata) for tp in got] == [(3, "checkpoint-α"), (5, "")], got
        resumed.subscribe([topic])
        seen: list = []

        def first_offsets():
            seen.extend(m for m in resumed.consume(100, 0.1) if not m.error())
            firsts = {}
            for m in seen:
                firsts.setdefault(m.partition(), m.offset())
            return firsts if len(firsts) == 2 else None

        assert helpers.wait_until(first_offsets, 60, "records from both partitions") == {0: 3, 1: 5}
    finally:
        resumed.close()


def test_cooperative_sticky_incremental_rebalances(group_broker):
    b = group_broker.bootstrap
    topic = helpers.new_topic(b, PARTITIONS, "ck-coop")
    g = Members(b, helpers.unique_group("ck-coop"), topic)
    produced = helpers.produce_ids(b, topic, range(600), PARTITIONS)
    events: dict[str, list[tuple[str, set]]] = {}

    def join(name: str) -> Consumer:
        log = events.setdefault(name, [])

        def on_assign(c, parts):
            log.append(("assign", {(p.topic, p.partition) for p in parts}))
            c.incremental_assign(parts)

        def on_revoke(c, parts):
            log.append(("revoke", {(p.topic, p.partition) for p in parts}))
            c.incremental_unassign(parts)

        return g.join(name, on_assign, on_revoke, **{"partition.assignment.strategy": "cooperative-sticky"})

    def revoked(name: str, since: int) -> set:
        return set().union(*(ps for kind, ps in events[name][since:] if kind == "revoke"))

    join("c1")
    assert g.wait_stable("c1 joined") == {"c1": g.everything}

    mark = len(events["c1"])
    join("c2")
    a2 = g.wait_stable("c2 joined")
    assert len(a2["c1"]) == len(a2["c2"]) == 3, a2
    # incremental: c1 gave up exactly what c2 got and kept the rest throughout
    assert revoked("c1", mark) == a2["c2"], events["c1"]

    marks = {n: len(events[n]) for n in ("c1", "c2")}
    join("c3")
    a3 = g.wait_stable("c3 joined")
    assert all(len(a) == 2 for a in a3.values()), a3
    for n in ("c1", "c2"):
        assert revoked(n, marks[n]) == a2[n] - a3[n] and a3[n] <= a2[n], (n, events[n])

    marks = {n: len(events[n]) for n in ("c2", "c3")}
    g.leave("c1")
    a4 = g.wait_stable("c1 left")
    for n in ("c2", "c3"):  # sticky: the survivors keep theirs and only gain c1's
        assert a3[n] <= a4[n] and not revoked(n, marks[n]), (n, events[n])
    assert a4["c2"] | a4["c3"] == g.everything

    g.pump_until(lambda: produced <= set(g.consumed), "every record consumed")
    for n in ("c2", "c3"):
        g.leave(n)
    helpers.wait_commits_at_end(b, g.group, topic, PARTITIONS)
