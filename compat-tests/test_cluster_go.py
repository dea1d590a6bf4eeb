"""franz-go on a 3-broker cluster (examples/cluster.sh) across a leader kill: the Go program's
`franz-cluster-failover` scenario (go/cluster.go) creates a 3-partition topic with kadm at
replication factor 3, produces with franz-go's default producer (idempotent, acks=all) while
a franz-go group consumer reads and commits. Once 2000 records are acknowledged this test
SIGKILLs the leader of partition 0 and tells the program on its stdin; the program produces
until 2000 more are acknowledged, checks that its group read every acknowledged value at its
acknowledged partition and offset and committed the end offsets, and writes the acknowledged
(value, partition, offset) list. Every surviving broker must then hold each acknowledged
record exactly once at that offset. Every wait is on a condition with a deadline."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import helpers
from test_cluster_clients import PARTITIONS, bootstrap, cluster, leaders, read_partition  # noqa: F401 (cluster: fixture)
from test_cluster_script import HOST, IDS, kafka_port

SCENARIO = "franz-cluster-failover"
KILL_AT = 2000  # acknowledged records before the kill; go/cluster.go's ackedBeforeKill


class GoRun:
    """The Go program as a subprocess; its stdout progress lines parsed on a thread."""

    def __init__(self, argv: list[str], stderr_path):
        self.stderr_path = stderr_path
        self._err = open(stderr_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err)
        self.lines: list[tuple[float, str]] = []
        self.acked = 0
        self.consumed = 0
        self.commits = 0
        self.fetch_errors: list[str] = []
        self.ready = False
        self.post_kill: dict[int, tuple[float, float]] = {}  # partition -> (read at, program's seconds)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            self.lines.append((time.monotonic(), line))
            f = line.split()
            if f[:1] == ["ready"]:
                self.ready = True
            elif f[:1] == ["acked"]:  # acked N p0 p1 p2 consumed M commits C
                self.acked, self.consumed, self.commits = int(f[1]), int(f[6]), int(f[8])
            elif f[:1] == ["fetch-error"]:
                self.fetch_errors.append(line)
            elif f[:1] == ["post-kill"]:
                self.post_kill[int(f[1])] = (time.monotonic(), float(f[2]))

    def join(self) -> None:
        """After the program exited: every line it printed has been read."""
        self._thread.join(30)
        assert not self._thread.is_alive(), "stdout still open 30 s after the program exited"

    def wait_for(self, cond, deadline_s: float, what: str) -> None:
        """Wait until cond() holds; fail at once if the program exits first."""
        helpers.wait_until(lambda: self.proc.poll() is not None or cond(), deadline_s, what)
        if self.proc.poll() is not None:
            self.join()
            raise AssertionError(f"the Go program exited {self.proc.returncode} while waiting for {what}\n{self.output()}")

    def output(self) -> str:
        self._err.flush()
        err = self.stderr_path.read_text(errors="replace").splitlines()
        return (
            "--- stdout (last 30 lines) ---\n" + "\n".join(l for _, l in self.lines[-30:])
            + "\n--- stderr (last 80 lines) ---\n" + "\n".join(err[-80:])
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._err.close()


def test_franz_go_across_a_leader_kill(cluster, go_binary, tmp_path):
    bs = bootstrap(cluster)
    topic = helpers.unique_topic("franz-replicated")
    group = helpers.unique_group("franz-replicated")
    out_file = tmp_path / "acked.json"
    go = GoRun([*go_binary, bs, SCENARIO, topic, group, str(out_file)], tmp_path / "go.stderr")
    try:
        go.wait_for(lambda: go.ready, 60, "the Go program to create the topic")
        placed = leaders(bs, topic)
        assert len(placed) == PARTITIONS and all(r == [1, 2, 3] for _, r, _ in placed.values()), placed

        # The kill comes once the producer has 2000 acknowledged and the group reads and commits.
        go.wait_for(
            lambda: go.acked >= KILL_AT and go.consumed >= KILL_AT // 2 and go.commits >= 1,
            60,
            f"{KILL_AT} acknowledged records, {KILL_AT // 2} read by the group and a commit",
        )
        coordinator = helpers.describe_group(bs, group).coordinator.id
        victim = leaders(bs, topic)[0][0]
        assert victim in IDS, f"leader of partition 0: {victim}"
        led = sorted(p for p, (leader, _, _) in leaders(bs, topic).items() if leader == victim)
        acked_before = go.acked
        killed = time.monotonic()
        cluster.ok("kill", str(victim))
        go.proc.stdin.write(b"killed\n")
        go.proc.stdin.flush()
        print(
            f"SIGKILL of broker {victim} (leader of partitions {led}; group coordinator: broker {coordinator}) "
            f"at {acked_before} acknowledged, {go.consumed} read, {go.commits} commits"
        )

        try:
            go.proc.wait(300)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the Go program still ran 300 s after the kill\n{go.output()}\n{cluster.logs()}") from None
        go.join()
        assert go.proc.returncode == 0, f"the Go program exited {go.proc.returncode}\n{go.output()}\n{cluster.logs()}"
        assert f"OK {SCENARIO}" in [l for _, l in go.lines], go.output()
        more = next((t for t, l in go.lines if l.startswith("acked ") and int(l.split()[1]) >= acked_before + 2000), None)
        assert more is not None, f"never 2000 more than {acked_before} acknowledged\n{go.output()}"
        for p in led:
            assert p in go.post_kill, f"no record produced after the kill was acknowledged on partition {p}\n{go.output()}"
        # From just before `cluster.sh kill` to the line reporting the first acknowledged
        # record produced after it (the program's own count starts when it reads "killed").
        print(
            f"first acknowledged write produced after SIGKILL of broker {victim}: "
            + ", ".join(f"partition {p} {t - killed:.2f} s (program: {s:.2f} s)" for p, (t, s) in sorted(go.post_kill.items()))
            + f"; 2000 more acknowledged {more - killed:.1f} s after it"
        )
        print("\n".join(l for _, l in go.lines if not l.startswith("acked ")))
        # franz-go hands its group management loop's errors to PollFetches too; the only ones
        # expected are failed dials of the killed broker (its coordinator, if it was that one).
        dead = f"{HOST}:{kafka_port(cluster.base, victim)}"
        unexpected = [e for e in go.fetch_errors if not (dead in e and "unable to dial" in e)]
        assert not unexpected, f"fetch errors other than dialing the killed broker {dead}: {unexpected[:5]}\n{go.output()}"
    finally:
        go.close()

    acked = {v: (p, off) for v, p, off in json.loads(out_file.read_text())}
    assert len(acked) >= KILL_AT + 2000, len(acked)

    # Exactly once in the log, at the offset the producer was told, on every survivor.
    survivors = [b for b in IDS if b != victim]
    for p in range(PARTITIONS):
        expected = sorted((off, v) for v, (part, off) in acked.items() if part == p)
        assert expected, f"nothing acknowledged on partition {p}"
        end = expected[-1][0] + 1
        for b in survivors:
            log = read_partition(f"{HOST}:{kafka_port(cluster.base, b)}", topic, p, end)
            values = [v for _, v in log]
            assert len(values) == len(set(values)), f"partition {p} on broker {b} holds duplicates"
            at = dict(log)
            missing = [(off, v) for off, v in expected if at.get(off) != v]
            assert not missing, f"partition {p} on broker {b}: {len(missing)} acknowledged records not at their offset, e.g. {missing[:3]}"
