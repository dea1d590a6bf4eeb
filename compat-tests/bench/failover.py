"""Failover time: SIGKILL the leader of a one-partition topic under an idempotent acks=all
producer and time from the kill to the first acknowledgement of a record sent after it.

The same client (confluent-kafka, librdkafka; linger.ms 0, one 1 KiB record every ~2 ms)
for every kind, so the time includes what any librdkafka application would see: the
cluster electing a new leader, the client noticing (its requests to the dead broker fail,
a NOT_LEADER_OR_FOLLOWER answer, a metadata refresh) and resending. Kafka runs in KRaft
combined mode with its defaults (a dead broker is fenced after broker.session.timeout.ms,
9 s); Jet with its own (raft, gossip failure detection)."""

from __future__ import annotations

import os
import signal
import time

import brokers

WARM_S = 2.0  # acknowledgements flowing before the kill
DEADLINE_S = 60.0  # give up waiting for the first acknowledgement after the kill


def leader_node(cluster: brokers.Cluster, topic: str) -> brokers.Node:
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(topic, timeout=10)
    leader = md.brokers[md.topics[topic].partitions[0].leader]
    return next(n for n in cluster.nodes if n.port == leader.port)


def measure(cluster: brokers.Cluster, topic: str) -> dict:
    """Kills the leader of `topic` (partition 0) after WARM_S of acknowledged writes; returns
    failover_s (kill → first acknowledgement of a record sent after the kill), or raises
    if none came within DEADLINE_S."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 0, "message.timeout.ms": int(DEADLINE_S * 1000)})
    state = dict(killed_at=None, first_after=None, acked_before=0, failed=0)

    def delivered(err, msg) -> None:
        sent = float(msg.key())
        if err is not None:
            state["failed"] += 1
        elif state["killed_at"] is None:
            state["acked_before"] += 1
        elif sent > state["killed_at"] and state["first_after"] is None:
            state["first_after"] = time.monotonic()

    victim = leader_node(cluster, topic)
    started = time.monotonic()
    payload = b"x" * 1024
    while state["first_after"] is None:
        now = time.monotonic()
        if state["killed_at"] is None and now - started >= WARM_S and state["acked_before"] > 0:
            state["killed_at"] = time.monotonic()
            os.killpg(victim.proc.pid, signal.SIGKILL)
            victim.proc.wait()
        elif state["killed_at"] is not None and now - state["killed_at"] > DEADLINE_S:
            raise TimeoutError(f"{cluster.kind}: no write acknowledged within {DEADLINE_S} s of killing the leader")
        producer.produce(topic, value=payload, key=repr(time.monotonic()).encode(), on_delivery=delivered)
        producer.poll(0.002)
    producer.flush(DEADLINE_S)
    return dict(failover_s=state["first_after"] - state["killed_at"], acked_before_kill=state["acked_before"],
                failed_deliveries=state["failed"])
