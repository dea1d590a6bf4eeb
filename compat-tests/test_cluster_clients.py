"""Real clients on a 3-broker cluster (examples/cluster.sh) across a leader kill, with no
manual help: confluent-kafka (librdkafka) creates a replication-factor-3 topic, an
idempotent acks=all producer writes while a consumer group reads and commits; the leader
of partition 0 is SIGKILLed mid-stream. Every acknowledged record must be read by the
group, and a fresh consumer reading each partition from the start through every surviving
broker must find each acknowledged record exactly once, at the same offset on every
replica. kcat -L against any broker lists the same leaders and replicas. Every wait is on
a condition."""

from __future__ import annotations

import os
import re
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import helpers
from jetproc import jet_bin
from test_cluster_script import HOST, IDS, RACKS, Cluster, admin_port, free_base, kafka_port

PARTITIONS = 3


@pytest.fixture
def cluster(tmp_path, request):
    if os.environ.get("JET_BOOTSTRAP"):
        pytest.skip("starts brokers of its own (JET_BOOTSTRAP is set)")
    if not jet_bin().exists():
        raise FileNotFoundError(f"JET_BIN {jet_bin()} does not exist (build with `cargo build --release`)")
    c = Cluster(tmp_path, free_base())
    c.ok("up")
    yield c
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(c.logs())
    c.run("down")
    for pid in c.ours():
        os.kill(pid, 9)


def bootstrap(c: Cluster, brokers=IDS) -> str:
    return ",".join(f"{HOST}:{kafka_port(c.base, b)}" for b in brokers)


def leaders(bs: str, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader, replicas, isr) as the cluster reports it through `bs`."""
    md = AdminClient({"bootstrap.servers": bs}).list_topics(topic, timeout=10)
    t = md.topics[topic]
    if t.error is not None:
        return {}
    return {p.id: (p.leader, sorted(p.replicas), sorted(p.isrs)) for p in t.partitions.values()}


def create_rf3_topic(bs: str, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """Creates `topic` with PARTITIONS partitions on all three brokers; waits for a leader
    of each and returns the placement."""
    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic(topic, PARTITIONS, 3)])[topic].result(30)
    helpers.wait_until(
        lambda: len(leaders(bs, topic)) == PARTITIONS and all(l >= 0 for l, _, _ in leaders(bs, topic).values()),
        60,
        "a leader for every partition",
    )
    placed = leaders(bs, topic)
    assert all(r == [1, 2, 3] for _, r, _ in placed.values()), placed
    return placed


class IdempotentProducer:
    """acks=all, idempotent: values "v<n>" round-robin over the partitions until stop()."""

    def __init__(self, bs: str, topic: str):
        self.p = Producer(
            {
                "bootstrap.servers": bs,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 120000,
            }
        )
        self.topic = topic
        self.acked: dict[str, tuple[int, int]] = {}
        self.errors: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _delivered(self, err, msg) -> None:
        if err is None:
            self.acked[msg.value().decode()] = (msg.partition(), msg.offset())
        else:
            self.errors.append(err)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            self.p.produce(self.topic, value=f"v{n}".encode(), partition=n % PARTITIONS, on_delivery=self._delivered)
            n += 1
            self.p.poll(0.002)

    def stop(self) -> dict[str, tuple[int, int]]:
        self._stop.set()
        self._thread.join(30)
        assert self.p.flush(120) == 0, "records still undelivered 120 s after stop"
        assert not self.errors, f"{len(self.errors)} delivery errors, e.g. {self.errors[:3]}"
        return dict(self.acked)


class GroupReader:
    """A confluent-kafka consumer in a group, committing as it reads, from a thread."""

    def __init__(self, bs: str, topic: str, group: str):
        self.c = Consumer(
            {
                "bootstrap.servers": bs,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
                "auto.commit.interval.ms": 200,
            }
        )
        self.c.subscribe([topic])
        self.seen: list[str] = []
        self.errors: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            m = self.c.poll(0.1)
            if m is None:
                continue
            if m.error():
                self.errors.append(m.error())
                continue
            self.seen.append(m.value().decode())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.c.close()


def read_partition(bs: str, topic: str, partition: int, end: int, start: int = 0) -> list[tuple[int, str]]:
    """(offset, value) of every record of `partition` from `start` (an offset, or
    OFFSET_BEGINNING) below `end`, through `bs` alone."""
    c = Consumer({"bootstrap.servers": bs, "group.id": "jet-cluster-check", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, start)])
    out: list[tuple[int, str]] = []
    deadline = time.monotonic() + 60
    try:
        while (not out or out[-1][0] < end - 1) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            out.append((m.offset(), m.value().decode()))
    finally:
        c.close()
    return out


def test_confluent_kafka_across_a_leader_kill(cluster):
    bs = bootstrap(cluster)
    topic = helpers.unique_topic("replicated")
    placed = create_rf3_topic(bs, topic)
    # kcat -L through each broker lists the same leaders and replicas, once gossip has
    # told it who won each election (a broker that has not heard yet answers
    # LEADER_NOT_AVAILABLE, as a Kafka broker does before its metadata update).
    expected = {p: (leader, replicas) for p, (leader, replicas, _) in placed.items()}
    for b in IDS:
        seen: list[str] = [""]

        def lists_the_placement() -> bool:
            out = helpers.run(["kcat", "-b", f"{HOST}:{kafka_port(cluster.base, b)}", "-L", "-t", topic]).stdout.decode()
            seen[0] = out
            listed = {
                int(m[1]): (int(m[2]), sorted(int(r) for r in m[3].split(",")))
                for m in re.finditer(r"partition (\d+), leader (-?\d+), replicas: (\d+(?:,\d+)*)", out)
            }
            return listed == expected

        try:
            helpers.wait_until(lists_the_placement, 30, f"broker {b} to list the placement {expected}")
        except TimeoutError as e:
            raise AssertionError(f"{e}; last listing:\n{seen[0]}") from e

    producer = IdempotentProducer(bs, topic)
    reader = GroupReader(bs, topic, helpers.unique_group("replicated"))
    helpers.wait_until(lambda: len(producer.acked) >= 2000, 60, "2000 acknowledged records")
    victim = leaders(bs, topic)[0][0]
    acked_before = len(producer.acked)
    killed = time.monotonic()
    cluster.ok("kill", str(victim))
    helpers.wait_until(lambda: len(producer.acked) >= acked_before + 2000, 120, "2000 more acknowledged after the kill")
    print(f"2000 more records acknowledged {time.monotonic() - killed:.1f} s after SIGKILL of broker {victim}")
    acked = producer.stop()

    survivors = [b for b in IDS if b != victim]
    helpers.wait_until(lambda: set(acked) <= set(reader.seen), 120, "the group to read every acknowledged record")
    reader.stop()
    assert not [e for e in reader.errors if e.fatal()], reader.errors[:5]

    # Exactly once in the log, at the offset the producer was told, on every survivor.
    for p in range(PARTITIONS):
        expected = sorted((off, v) for v, (part, off) in acked.items() if part == p)
        end = expected[-1][0] + 1
        for b in survivors:
            log = read_partition(f"{HOST}:{kafka_port(cluster.base, b)}", topic, p, end)
            values = [v for _, v in log]
            assert len(values) == len(set(values)), f"partition {p} on broker {b} holds duplicates"
            at = dict(log)
            missing = [(off, v) for off, v in expected if at.get(off) != v]
            assert not missing, f"partition {p} on broker {b}: {len(missing)} acknowledged records not at their offset, e.g. {missing[:3]}"
    # The coordinators loaded their groups from replicated partitions, whose raft control
    # batches are not group records.
    for b in IDS:
        text = cluster.log(b).read_text(errors="replace")
        assert "undecodable __consumer_offsets record" not in text, f"broker {b} misread a control batch"


def topic_bytes_out(c: Cluster, broker: int, topic: str) -> float:
    """jet_topic_bytes_out_total of `topic` on `broker` (0 before any fetch sent records)."""
    import urllib.request

    page = urllib.request.urlopen(f"http://{HOST}:{admin_port(c.base, broker)}/metrics", timeout=10).read().decode()
    m = re.search(rf'^jet_topic_bytes_out_total{{topic="{re.escape(topic)}"}} (\S+)$', page, re.M)
    return float(m[1]) if m else 0.0


def test_confluent_consumer_reads_from_the_follower_in_its_rack(cluster):
    """KIP-392: a consumer with client.rack set to a follower's rack is sent there by the
    leader (preferred_read_replica) and reads every record from that follower; the
    leader sends it none."""
    bs = bootstrap(cluster)
    topic = helpers.unique_topic("rack-reads")
    placed = create_rf3_topic(bs, topic)
    leader = placed[0][0]
    follower = next(b for b in IDS if b != leader)
    p = Producer({"bootstrap.servers": bs, "acks": "all", "enable.idempotence": True})
    for i in range(100):
        p.produce(topic, value=f"r{i}".encode(), partition=0)
    assert p.flush(30) == 0
    helpers.wait_until(lambda: leaders(bs, topic)[0][2] == [1, 2, 3], 60, "every replica of partition 0 in sync")

    c = Consumer({
        "bootstrap.servers": bs,
        "group.id": helpers.unique_group("rack-reads"),
        "client.rack": RACKS[follower - 1],
        "enable.auto.commit": False,
    })
    c.assign([TopicPartition(topic, 0, 0)])
    got: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < 100 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value().decode())
    finally:
        c.close()
    assert got == [f"r{i}" for i in range(100)]
    served = {b: topic_bytes_out(cluster, b, topic) for b in IDS}
    assert served[follower] > 0 and served[leader] == 0, f"bytes sent per broker {served} (leader {leader}, follower {follower} in {RACKS[follower - 1]})"
