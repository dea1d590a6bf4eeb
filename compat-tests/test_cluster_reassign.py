"""A new broker joins a running 3-broker cluster (examples/cluster.sh start 4) and takes over a
replica of an existing topic, moved with the Java Admin API kafka-reassign-partitions.sh uses
(java/ Reassign.java: alterPartitionReassignments, listPartitionReassignments, describeTopics).
The move takes partition 0 away from its leader while an idempotent acks=all confluent-kafka
producer keeps writing to every partition; every acknowledged record must then be read back once,
at its acknowledged offset, and kcat -L through the new broker lists it among the replicas. Every
wait is on a condition."""

from __future__ import annotations

import re
import subprocess

import helpers
from test_cluster_clients import PARTITIONS, IdempotentProducer, bootstrap, cluster, create_rf3_topic, leaders, read_partition  # noqa: F401 (cluster: fixture)
from test_cluster_script import HOST, kafka_port


def test_a_new_broker_takes_a_replica_moved_with_the_java_admin_api(cluster, java_main, tmp_path):
    bs = bootstrap(cluster)
    topic = helpers.unique_topic("moved")
    placed = create_rf3_topic(bs, topic)
    producer = IdempotentProducer(bs, topic)
    helpers.wait_until(lambda: len(producer.acked) >= 1000, 60, "1000 acknowledged records")

    out = cluster.ok("start", "4")
    assert "rejoined the cluster; brokers [1 2 3 4]" in out, out
    leader = placed[0][0]
    target = [4] + [b for b in (1, 2, 3) if b != leader]
    run = subprocess.run(
        [*java_main, bs, "reassign", topic, "0", ",".join(map(str, target))], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, f"java reassign exited {run.returncode}\n{run.stdout}\n{run.stderr[-6000:]}"
    moved = re.search(r"^moved (\d+) leader (\d+)$", run.stdout, re.M)
    assert moved, run.stdout
    print(f"partition 0 moved from {placed[0][1]} to {target} in {moved[1]} ms, now led by broker {moved[2]}")

    acked_at_move = len(producer.acked)
    helpers.wait_until(lambda: len(producer.acked) >= acked_at_move + 1000, 60, "1000 more acknowledged after the move")
    acked = producer.stop()

    four = f"{HOST}:{kafka_port(cluster.base, 4)}"
    md = leaders(four, topic)
    assert md[0][1] == sorted(target) and md[0][2] == sorted(target), md
    assert all(md[p][1] == [1, 2, 3] for p in range(1, PARTITIONS)), md
    kcat = helpers.run(["kcat", "-b", four, "-L", "-t", topic]).stdout.decode()
    listed = re.search(r"partition 0, leader \d+, replicas: (\S+),", kcat)
    assert listed and sorted(map(int, listed[1].split(","))) == sorted(target), kcat

    for p in range(PARTITIONS):
        expected = sorted((off, v) for v, (part, off) in acked.items() if part == p)
        log = read_partition(four, topic, p, expected[-1][0] + 1)
        values = [v for _, v in log]
        assert len(values) == len(set(values)), f"partition {p} holds duplicates"
        at = dict(log)
        missing = [(off, v) for off, v in expected if at.get(off) != v]
        assert not missing, f"partition {p}: {len(missing)} acknowledged records not at their offset, e.g. {missing[:3]}"
    # The replica that moved away is gone from its broker's data directory.
    gone = cluster.dir / f"broker-{leader}" / "data" / "raft" / f"{topic}-0"
    helpers.wait_until(lambda: not gone.exists(), 30, f"{gone} to be removed")
