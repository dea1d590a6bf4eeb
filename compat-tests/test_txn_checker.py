"""A Jepsen-style checker of transactions on a 3-broker cluster (examples/cluster.sh):
the Java program's `txn-checker` scenario runs concurrent transactional producers (Java
kafka-clients 4.x) that commit or abort at random over a replication-factor-3 topic, while
this test SIGKILLs a random broker and starts it again, twice. Then a read_committed
consumer reads every partition to its last stable offset, and the history is checked:

* every committed transaction is read whole, each record exactly once;
* no record of an aborted transaction is read;
* a transaction whose outcome the client could not learn (its commit or abort failed
  during a kill) is read whole or not at all;
* within a partition, a transaction's records are read in the order they were sent;
* nothing is read that no transaction wrote.

`JET_TXN_CHECKER_RUNS` (default 1) repeats the scenario with new random choices; the
seed of each run is printed, so a failure can be replayed."""

from __future__ import annotations

import os
import random
import re
from collections import defaultdict

import helpers
from test_cluster_clients import PARTITIONS, bootstrap, cluster, create_rf3_topic  # noqa: F401 (cluster: fixture)
from test_cluster_java import JavaRun
from test_cluster_script import IDS

RUNS = int(os.environ.get("JET_TXN_CHECKER_RUNS", "1"))
WRITERS = 4


def check_history(lines: list[str]) -> tuple[int, int, int]:
    """Checks the history; returns (committed, aborted, unknown) transaction counts."""
    outcomes: dict[str, tuple[int, str]] = {}
    for line in lines:
        if m := re.fullmatch(r"txn (\S+) (\d+) (committed|aborted|unknown)", line):
            outcomes[m[1]] = (int(m[2]), m[3])
    read: dict[str, list[tuple[int, int, int]]] = defaultdict(list)  # txn -> [(record, partition, offset)]
    seen_values = set()
    for line in lines:
        if m := re.fullmatch(r"read (w\d+-t\d+)-r(\d+)of(\d+) (\d+) (\d+)", line):
            value = f"{m[1]}-r{m[2]}of{m[3]}"
            assert value not in seen_values, f"{value} read twice"
            seen_values.add(value)
            read[m[1]].append((int(m[2]), int(m[4]), int(m[5])))
        elif line.startswith("read "):
            raise AssertionError(f"a record no transaction wrote: {line}")
    counts = {"committed": 0, "aborted": 0, "unknown": 0}
    for txn, (k, outcome) in outcomes.items():
        counts[outcome] += 1
        got = read.get(txn, [])
        if outcome == "committed":
            assert len(got) == k, f"committed {txn} has {len(got)} of its {k} records: {got}"
        elif outcome == "aborted":
            assert not got, f"aborted {txn} has records read: {got}"
        else:
            assert len(got) in (0, k), f"{txn} (outcome unknown) is partial: {len(got)} of {k}: {got}"
        by_partition: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for record, partition, offset in got:
            by_partition[partition].append((offset, record))
        for partition, recs in by_partition.items():
            recs.sort()
            assert [r for _, r in recs] == sorted(r for _, r in recs), f"{txn} out of order in partition {partition}: {recs}"
    # A transaction the writer never reported (it was still running when stopped and then
    # aborted by its timeout) must not be read at all.
    for txn in read:
        assert txn in outcomes, f"{txn} was read but its writer never decided it"
    return counts["committed"], counts["aborted"], counts["unknown"]


def test_check_history_catches_partial_and_aborted_reads():
    ok = ["txn w0-t0 2 committed", "txn w0-t1 1 aborted", "read w0-t0-r0of2 0 5", "read w0-t0-r1of2 1 3"]
    assert check_history(ok) == (1, 1, 0)
    for bad in (
        ok[:3],  # partial commit
        ok + ["read w0-t1-r0of1 2 9"],  # aborted read
        ok + ["read w0-t0-r0of2 0 5"],  # duplicate
        ok + ["read w9-t0-r0of1 0 1"],  # never written
        ["txn w0-t0 2 committed", "read w0-t0-r1of2 0 5", "read w0-t0-r0of2 0 6"],  # reordered
    ):
        try:
            check_history(bad)
        except AssertionError:
            continue
        raise AssertionError(f"not caught: {bad}")


def test_transactions_stay_atomic_across_broker_kills(cluster, java_main, tmp_path):
    bs = bootstrap(cluster)
    for run in range(RUNS):
        seed = random.randrange(1 << 30)
        rnd = random.Random(seed)
        topic = helpers.unique_topic("txn-checker")
        create_rf3_topic(bs, topic)
        out_file = tmp_path / f"history-{run}.txt"
        java = JavaRun(
            [*java_main, bs, "txn-checker", topic, str(PARTITIONS), str(WRITERS), str(seed), str(out_file)],
            tmp_path / f"java-{run}.stderr",
        )

        def committed() -> int:
            counts = [int(m[1]) for _, line in list(java.lines) if (m := re.fullmatch(r"committed (\d+)", line))]
            return max(counts, default=0)

        try:
            for kill in range(2):
                target = committed() + 40
                helpers.wait_until(lambda: committed() >= target or java.p.poll() is not None, 180, f"{target} commits")
                assert java.p.poll() is None, f"the checker exited early\n{java.output()}"
                victim = rnd.choice(IDS)
                print(f"run {run} (seed {seed}): SIGKILL broker {victim} after {committed()} commits")
                cluster.ok("kill", str(victim))
                target = committed() + 20
                helpers.wait_until(lambda: committed() >= target or java.p.poll() is not None, 180, f"{target} commits with broker {victim} down")
                cluster.ok("start", str(victim))
            target = committed() + 20
            helpers.wait_until(lambda: committed() >= target or java.p.poll() is not None, 180, f"{target} commits after the restarts")
            java.tell("stop")
            rc = java.finish(420)
        except BaseException:
            java.stop()
            print(java.output())
            raise
        out = java.output()
        assert rc == 0, f"the checker exited {rc}\n{out}"
        lines = out_file.read_text().splitlines()
        c, a, u = check_history(lines)
        print(f"run {run} (seed {seed}): {c} committed, {a} aborted, {u} unknown transactions; history checked")
        assert c >= 80, f"too few commits to check anything: {c}"
