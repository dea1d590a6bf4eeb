"""Start and measure clusters of N brokers of one kind: Apache Kafka (KRaft, combined
broker+controller per node) or Jet, each node on its own loopback ports and data dir.

A kind is a name in KINDS; its settings are stated in DURABILITY and in the code below,
and the report prints DURABILITY next to every table."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import kproto  # noqa: E402  (compat-tests/kproto.py: ApiVersions + Metadata readiness probe)

READY_DEADLINE_S = 120.0
READY_POLL_S = 0.002  # start-to-ready is measured to within this
STOP_DEADLINE_S = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Stock Kafka server settings (as kafka-server-start.sh runs them) except the log dir, the
# listeners and replication factors of 1 for the internal topics of a single node.
# The same logging the reference broker of the compat tests uses: WARN and above to stderr.
KAFKA_LOG4J = Path(__file__).resolve().parent.parent / "kafka-ref" / "log4j2.properties"
KAFKA_HEAP = ["-Xms1g", "-Xmx1g"]
KAFKA_JVM = ["-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
             "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true"]
JET_INTERVAL_FLUSH_MS = 1000

KINDS = ("kafka", "jet-fsync", "jet-interval")
DURABILITY = {
    "kafka": f"Apache Kafka 4.1.1, heap {' '.join(KAFKA_HEAP)}, G1; stock settings: no fsync on write "
             "(log.flush.interval.messages/ms unset; the OS writes back dirty pages)",
    "jet-fsync": "Jet default: every write fsynced (group commit) before it is acknowledged or visible",
    "jet-interval": f"Jet --log-flush-interval-ms {JET_INTERVAL_FLUSH_MS}: fsync every {JET_INTERVAL_FLUSH_MS} ms, "
                    "acknowledged before durable (Kafka's model)",
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Node:
    port: int
    data_dir: Path
    argv: list[str]
    proc: subprocess.Popen | None = None
    ready_s: float = 0.0
    _spawned: float = 0.0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def spawn(self) -> None:
        log = open(self.data_dir / "broker.log", "ab")
        self._spawned = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def wait_ready(self) -> None:
        kproto.wait_ready("127.0.0.1", self.port, READY_DEADLINE_S, alive=lambda: self.proc.poll() is None,
                          interval=READY_POLL_S)
        self.ready_s = time.monotonic() - self._spawned

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@dataclass
class Cluster:
    kind: str
    nodes: list[Node] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    def pids(self) -> list[int]:
        return [n.proc.pid for n in self.nodes]

    def start(self) -> None:
        """Spawns every node, then waits for each (a KRaft quorum needs its voters up) and,
        for more than one, until every node lists all of them and names a controller."""
        for n in self.nodes:
            n.spawn()
        for n in self.nodes:
            n.wait_ready()
        if len(self.nodes) > 1:
            end = time.monotonic() + READY_DEADLINE_S
            pending = list(self.nodes)
            while pending:
                if time.monotonic() > end:
                    raise TimeoutError(f"{self.kind}: {[n.bootstrap for n in pending]} never listed the whole cluster")
                n = pending[0]
                try:
                    _, md = kproto.probe("127.0.0.1", n.port)
                    if len(md["brokers"]) == len(self.nodes) and md["controller"] >= 0:
                        n.ready_s = time.monotonic() - n._spawned
                        pending.pop(0)
                        continue
                except (OSError, ValueError, RuntimeError):
                    pass  # not formed yet
                time.sleep(READY_POLL_S * 10)  # poll interval, not a fixed wait

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()

    def wipe(self) -> None:
        """Removes every node's data dir (after stop)."""
        for n in self.nodes:
            shutil.rmtree(n.data_dir, ignore_errors=True)

    def cpu_seconds(self) -> float:
        return sum(proc_cpu_seconds(p) for p in self.pids())

    def rss_kb(self) -> int:
        return sum(proc_rss_kb(p) for p in self.pids())

    def ready_s(self) -> float:
        """Start-to-ready of the slowest node."""
        return max(n.ready_s for n in self.nodes)


class Usage:
    """Broker CPU seconds and peak RSS (sampled every 50 ms) over a `with` block."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.peak_rss_kb = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_rss_kb = max(self.peak_rss_kb, self.cluster.rss_kb())

    def __enter__(self) -> Usage:
        self.cpu0 = self.cluster.cpu_seconds()
        self.peak_rss_kb = self.cluster.rss_kb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu_s = self.cluster.cpu_seconds() - self.cpu0


def make_cluster(kind: str, n: int, root: Path, jet_bin: Path, kafka_libs: Path) -> Cluster:
    """A cluster of n fresh nodes (data dirs under root are wiped), not yet started."""
    if root.exists():
        shutil.rmtree(root)
    if kind == "kafka":
        return _kafka_cluster(n, root, kafka_libs)
    if kind in ("jet-fsync", "jet-interval"):
        extra = ["--log-flush-interval-ms", str(JET_INTERVAL_FLUSH_MS)] if kind == "jet-interval" else []
        if n == 1:
            return Cluster(kind, [_jet_node(root / "node0", jet_bin, extra)])
        return _jet_cluster(kind, n, root, jet_bin, extra)
    raise ValueError(f"unknown broker kind {kind!r}; one of {KINDS}")


def _jet_node(data_dir: Path, jet_bin: Path, extra: list[str]) -> Node:
    data_dir.mkdir(parents=True)
    port = free_port()
    addr = f"127.0.0.1:{port}"
    argv = [str(jet_bin), "--listen", addr, "--admin-listen", "127.0.0.1:0", "--advertised-listener", addr, "--data-dir", str(data_dir / "data"), *extra]
    return Node(port, data_dir, argv)


def _jet_cluster(kind: str, n: int, root: Path, jet_bin: Path, extra: list[str]) -> Cluster:
    """n Jet brokers that find each other by gossip (every one seeds from all) and form
    the controller's raft group once all n are up (--bootstrap-expect n), as
    examples/cluster.sh starts them."""
    ports = [(free_port(), free_port(), free_port()) for _ in range(n)]
    seeds = ",".join(f"127.0.0.1:{gossip}" for _, gossip, _ in ports)
    nodes = []
    for i, (port, gossip, raft) in enumerate(ports):
        d = root / f"node{i}"
        d.mkdir(parents=True)
        addr = f"127.0.0.1:{port}"
        argv = [str(jet_bin), "--node-id", str(i + 1), "--cluster-id", "jet-bench", "--data-dir", str(d / "data"),
                "--listen", addr, "--advertised-listener", addr, "--admin-listen", "127.0.0.1:0",
                "--gossip-listen", f"127.0.0.1:{gossip}", "--seeds", seeds, "--raft-listen", f"127.0.0.1:{raft}",
                "--bootstrap-expect", str(n),
                # Room for the idle-CPU points (--idle-partitions): the default bound is 10,000
                # partitions per broker, internal topics included.
                "--set", "max.broker.partitions=100000",
                # As the Kafka cluster is configured: acks=all needs two replicas in sync.
                "--min-insync-replicas", "2" if n >= 3 else "1", *extra]
        nodes.append(Node(port, d, argv))
    return Cluster(kind, nodes)


def _kafka_cluster(n: int, root: Path, libs: Path) -> Cluster:
    if not any(libs.glob("*.jar")):
        raise SystemExit(f"no Kafka jars in {libs} (compat-tests/bench/run.sh fetches them)")
    cp = f"{libs}/*"
    ports = [(free_port(), free_port()) for _ in range(n)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{cport}" for i, (_, cport) in enumerate(ports))
    cluster_id = subprocess.run(["java", "-cp", cp, "kafka.tools.StorageTool", "random-uuid"],
                                check=True, capture_output=True, text=True).stdout.strip()
    nodes = []
    for i, (port, cport) in enumerate(ports):
        d = root / f"node{i}"
        d.mkdir(parents=True)
        props = d / "server.properties"
        props.write_text(_kafka_properties(i + 1, port, cport, voters, d / "data", n))
        subprocess.run(["java", "-cp", cp, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
                       check=True, capture_output=True)
        argv = ["java", *KAFKA_HEAP, *KAFKA_JVM, f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
                "-cp", cp, "kafka.Kafka", str(props)]
        nodes.append(Node(port, d, argv))
    return Cluster("kafka", nodes)


def _kafka_properties(node_id: int, port: int, cport: int, voters: str, data: Path, n: int) -> str:
    rf = min(n, 3)
    return f"""process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data}
offsets.topic.replication.factor={rf}
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
min.insync.replicas={2 if n >= 3 else 1}
"""


