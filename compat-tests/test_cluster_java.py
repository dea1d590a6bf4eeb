"""The Java kafka-clients 4.1.1 on a 3-broker cluster (examples/cluster.sh) across a leader
kill: java/ ClusterFailover.java (scenario `cluster-failover`) runs an idempotent acks=all
KafkaProducer on a replication-factor-3 topic of 3 partitions created here, and a classic
KafkaConsumer in a group that reads and commits after every poll. Once the program reports
2000 acknowledged records the leader of partition 0 is SIGKILLed and the program told so on
its stdin; it produces until 2000 more are acknowledged, waits until its group has read every
acknowledged value and committed the end offsets, and writes every acknowledged (value,
partition, offset). A fresh consumer reading each partition through every surviving broker
must find each of them exactly once at its acknowledged offset. Every wait is on a condition."""

from __future__ import annotations

import re
import subprocess
import threading
import time

import helpers
from test_cluster_clients import PARTITIONS, bootstrap, cluster, create_rf3_topic, leaders, read_partition  # noqa: F401 (cluster: fixture)
from test_cluster_script import HOST, IDS, kafka_port

BEFORE_KILL = 2000
AFTER_KILL = 2000  # ClusterFailover.AFTER_KILL


class JavaRun:
    """The Java program as a subprocess; its stdout lines kept with the time each was read."""

    def __init__(self, argv: list[str], stderr_path):
        self.stderr_path = stderr_path
        self._err = open(stderr_path, "wb")
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self.p.stdout:
            self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))

    def acked(self) -> int:
        counts = [int(m[1]) for _, line in list(self.lines) if (m := re.fullmatch(r"acked (\d+)", line))]
        return max(counts, default=0)

    def first_line_at(self, pattern: str, after: float = 0.0) -> tuple[float, str] | None:
        return next(((t, line) for t, line in list(self.lines) if t >= after and re.fullmatch(pattern, line)), None)

    def tell(self, line: str) -> None:
        self.p.stdin.write(line.encode() + b"\n")
        self.p.stdin.flush()

    def finish(self, timeout: float) -> int:
        try:
            return self.p.wait(timeout)
        finally:
            self.stop()

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(30)
        self._reader.join(30)
        self._err.close()

    def output(self) -> str:
        err = self.stderr_path.read_text(errors="replace")
        return "--- java stdout ---\n" + "\n".join(line for _, line in self.lines)[-8000:] + "\n--- java stderr ---\n" + err[-8000:]


def test_java_client_across_a_leader_kill(cluster, java_main, tmp_path):
    bs = bootstrap(cluster)
    topic = helpers.unique_topic("java-replicated")
    create_rf3_topic(bs, topic)

    out_file = tmp_path / "acked.txt"
    java = JavaRun([*java_main, bs, "cluster-failover", topic, str(out_file)], tmp_path / "java.stderr")
    rc = None
    try:
        helpers.wait_until(lambda: java.acked() >= BEFORE_KILL or java.p.poll() is not None, 120, f"{BEFORE_KILL} acknowledged records")
        assert java.p.poll() is None, f"the Java program exited {java.p.returncode} before the kill\n{java.output()}"
        victim = leaders(bs, topic)[0][0]
        views = {b: leaders(f"{HOST}:{kafka_port(cluster.base, b)}", topic) for b in IDS}
        group = java.first_line_at(r"group \S+")[1].split()[1]
        try:  # for the report only: was the group's coordinator the broker killed?
            coordinator = helpers.describe_group(bs, group).coordinator.id
        except Exception as e:  # noqa: BLE001
            coordinator = f"unknown ({e!r})"
        acked_before = java.acked()
        killed = time.monotonic()
        cluster.ok("kill", str(victim))
        java.tell("killed")
        rc = java.finish(540)
    except BaseException:
        java.stop()
        print(java.output())
        raise
    out = java.output()
    assert rc == 0, f"the Java program exited {rc}\n{out}"
    assert "OK cluster-failover" in out, out

    after = {b: leaders(f"{HOST}:{kafka_port(cluster.base, b)}", topic) for b in IDS if b != victim}
    print(f"before the kill, (leader, replicas, isr) per partition as each broker listed them: {views}")
    print(f"after: {after}")
    assert after[min(after)][0][0] != victim, f"partition 0 still led by the killed broker {victim}: {after}"
    print(f"group {group}: coordinator broker {coordinator}" + (" (the one killed)" if coordinator == victim else " (not killed)"))
    for _, line in java.lines:
        if not re.fullmatch(r"(acked|first-ack-after-kill) [\d ]+", line):
            print(f"java: {line}")

    # What the Java client logged at WARN and above (slf4j-simple on stderr), numbers folded.
    warned: dict[str, int] = {}
    for line in java.stderr_path.read_text(errors="replace").splitlines():
        if re.match(r"\[[^\]]+\] (WARN|ERROR) ", line):
            key = re.sub(r"\d+", "N", re.sub(r"^\[[^\]]+\] ", "", line))[:200]
            warned[key] = warned.get(key, 0) + 1
    for key, n in sorted(warned.items(), key=lambda kv: -kv[1])[:15]:
        print(f"java client log x{n}: {key}")

    # Failover as the Java client saw it.
    for p in range(PARTITIONS):
        seen = java.first_line_at(rf"first-ack-after-kill {p} \d+")
        assert seen is not None, f"no acknowledgement on partition {p} after the kill\n{out}"
        print(f"partition {p}: first acknowledged write {seen[0] - killed:.2f} s after SIGKILL of broker {victim} (Java: {seen[1].split()[-1]} ms after it was told)")
    p0 = java.first_line_at(r"first-ack-after-kill 0 \d+")[0]
    first_any = min(java.first_line_at(rf"first-ack-after-kill {p} \d+")[0] for p in range(PARTITIONS))
    # The program counts its 2000 from the moment it read "killed" (a little after the kill).
    seen_at = int(re.search(r"kill seen at acked (\d+)", out)[1])
    assert seen_at >= acked_before, out
    more = next((t for t, line in java.lines if (m := re.fullmatch(r"acked (\d+)", line)) and int(m[1]) >= seen_at + AFTER_KILL), None)
    assert more is not None, out
    print(
        f"SIGKILL of broker {victim} (leader of partition 0) at {acked_before} acknowledged: next acknowledged write "
        f"{first_any - killed:.2f} s after it, on partition 0 {p0 - killed:.2f} s after it; {AFTER_KILL} more than the "
        f"{seen_at} acknowledged when the program was told were acknowledged {more - killed:.1f} s after the kill"
    )

    acked: dict[str, tuple[int, int]] = {}
    for line in out_file.read_text().splitlines():
        v, part, off = line.split()
        assert v not in acked, f"{v} acknowledged twice"
        acked[v] = (int(part), int(off))
    assert len(acked) >= acked_before + AFTER_KILL, (len(acked), acked_before)
    positions = [po for po in acked.values()]
    assert len(positions) == len(set(positions)), "two acknowledged records at one (partition, offset)"

    # Exactly once in the log, at the offset the producer was told, on every survivor.
    survivors = [b for b in IDS if b != victim]
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
