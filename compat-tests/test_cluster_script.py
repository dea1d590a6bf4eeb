"""examples/cluster.sh driven for real: `up` starts three gossiping brokers in a temporary
JET_CLUSTER_DIR on free ports and returns only once each of them lists all three (with
their racks) and a controller among them in Metadata; `up` again is a no-op; `kill 2`
drops broker 2 out of the others' Metadata, `start 2` brings it back on its data; `down`
leaves no process behind. A broker that cannot start makes `up` fail fast, naming its log.
Every wait is on a condition."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

import helpers
import kproto
from jetproc import REPO, jet_bin

SCRIPT = REPO / "examples" / "cluster.sh"
HOST = "127.0.0.1"
IDS = (1, 2, 3)
RACKS = ("ra", "rb", "rc")


def kafka_port(base: int, broker: int) -> int:
    return base + broker - 1


def admin_port(base: int, broker: int) -> int:
    return base + 10 + broker - 1


def gossip_port(base: int, broker: int) -> int:
    return base + 20 + broker - 1


def raft_port(base: int, broker: int) -> int:
    return base + 30 + broker - 1


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_base() -> int:
    """A base port whose ports for brokers 1 to 4 (the fourth joins in some tests; gossip
    ports for TCP and UDP) are free right now."""
    for _ in range(200):
        # Below Linux's ephemeral range (32768+), where outgoing connections take ports.
        base = random.randrange(20000, 32700)
        tcp = [f(base, b) for b in (*IDS, 4) for f in (kafka_port, admin_port, gossip_port, raft_port)]
        udp = [gossip_port(base, b) for b in (*IDS, 4)]
        if all(_bindable(p, socket.SOCK_STREAM) for p in tcp) and all(_bindable(p, socket.SOCK_DGRAM) for p in udp):
            return base
    raise RuntimeError("no free base port found")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


class Cluster:
    def __init__(self, root: Path, base: int):
        self.dir = root / "cluster"
        self.base = base
        self.env = dict(os.environ)
        self.env.update(
            JET_BIN=str(jet_bin()),
            JET_CLUSTER_DIR=str(self.dir),
            JET_BASE_PORT=str(base),
            JET_RACKS=",".join(RACKS),
            JET_CLUSTER_TIMEOUT="60",
        )
        for var in ("JET_CLUSTER_ID", "JET_GOSSIP_KEY", "JET_CONFIG", "JET_SET"):
            self.env.pop(var, None)

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def ok(self, *args: str) -> str:
        p = self.run(*args)
        assert p.returncode == 0, f"cluster.sh {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}\n{self.logs()}"
        return p.stdout

    def pid(self, broker: int) -> int | None:
        f = self.dir / f"broker-{broker}" / "jet.pid"
        return int(f.read_text()) if f.exists() else None

    def log(self, broker: int) -> Path:
        return self.dir / f"broker-{broker}" / "jet.log"

    def logs(self) -> str:
        out = []
        for b in (*IDS, 4):
            if self.log(b).exists():
                out.append(f"--- broker {b} log (tail) ---\n" + "\n".join(self.log(b).read_text(errors="replace").splitlines()[-40:]))
        return "\n".join(out)

    def ours(self) -> list[int]:
        """Live processes started on this cluster's data directories."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(self.dir) + "/broker-" in cmdline and "--data-dir" in cmdline and alive(int(entry.name)):
                pids.append(int(entry.name))
        return pids

    def listed(self, brokers=IDS) -> list[tuple[int, str, int, str]]:
        return sorted((b, HOST, kafka_port(self.base, b), RACKS[b - 1]) for b in brokers)

    def metadata(self, broker: int) -> dict:
        """Metadata v1 asked of `broker` itself on one connection."""
        _, md = kproto.probe(HOST, kafka_port(self.base, broker), timeout=5)
        md["brokers"] = sorted(md["brokers"])
        return md


@pytest.fixture
def cluster(tmp_path, request):
    if os.environ.get("JET_BOOTSTRAP"):
        pytest.skip("starts brokers of its own (JET_BOOTSTRAP is set)")
    if not jet_bin().exists():
        raise FileNotFoundError(f"JET_BIN {jet_bin()} does not exist (build with `cargo build --release`)")
    c = Cluster(tmp_path, free_base())
    yield c
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(c.logs())
    c.run("down")
    for pid in c.ours():  # only if `down` failed: leave nothing running
        os.kill(pid, 9)


def test_up_kill_start_down(cluster):
    out = cluster.ok("up")
    assert "cluster up" in out, out

    # `up` has returned: every broker lists all three with their racks, and a controller
    # among them, in its own Metadata (no waiting here).
    everyone = cluster.listed()
    cluster_ids = set()
    for b in IDS:
        md = cluster.metadata(b)
        assert md["brokers"] == everyone, f"broker {b}: {md}"
        assert md["controller"] in IDS, f"broker {b}: {md}"
        # A real client bootstrapped from this broker alone sees the same.
        meta = AdminClient({"bootstrap.servers": f"{HOST}:{kafka_port(cluster.base, b)}"}).list_topics(timeout=15)
        assert sorted(meta.brokers) == list(IDS), f"broker {b}: {meta.brokers}"
        assert meta.controller_id in IDS, f"broker {b}: controller {meta.controller_id}"
        cluster_ids.add(meta.cluster_id)
    assert len(cluster_ids) == 1 and None not in cluster_ids, f"one cluster id: {cluster_ids}"

    pids = {b: cluster.pid(b) for b in IDS}
    assert all(p is not None and alive(p) for p in pids.values()), pids
    assert sorted(cluster.ours()) == sorted(pids.values())

    # Idempotent: a second `up` starts nothing.
    out = cluster.ok("up")
    assert "already up" in out, out
    assert {b: cluster.pid(b) for b in IDS} == pids
    status = cluster.ok("status")
    for b in IDS:
        line = next(ln for ln in status.splitlines() if ln.split()[:1] == [str(b)])
        assert f"running:{pids[b]}" in line and str(kafka_port(cluster.base, b)) in line, status

    # kill 2: it is gone, and the others drop it from Metadata once gossip declares it failed.
    cluster.ok("kill", "2")
    assert not alive(pids[2])
    assert cluster.run("status").returncode == 1
    survivors = cluster.listed((1, 3))
    for b in (1, 3):
        helpers.wait_until(lambda b=b: cluster.metadata(b)["brokers"] == survivors, 30, f"broker {b} to drop broker 2")

    # start 2: back on its data; the script returns once every broker lists all three again.
    out = cluster.ok("start", "2")
    assert "rejoined" in out, out
    new_pid = cluster.pid(2)
    assert new_pid != pids[2] and alive(new_pid)
    for b in IDS:
        md = cluster.metadata(b)
        assert md["brokers"] == everyone, f"broker {b} after the restart: {md}"
        assert md["controller"] in IDS, f"broker {b}: {md}"
    meta = AdminClient({"bootstrap.servers": f"{HOST}:{kafka_port(cluster.base, 2)}"}).list_topics(timeout=15)
    assert meta.cluster_id in cluster_ids, "broker 2 restarted on its own data, same cluster id"

    # down: every broker exits, nothing is left running.
    pids[2] = new_pid
    out = cluster.ok("down")
    for b in IDS:
        assert f"broker {b}: stopped" in out, out
        assert not alive(pids[b]), f"broker {b} (pid {pids[b]}) still runs after down"
        assert cluster.pid(b) is None, "pid files are removed"
    assert cluster.ours() == []
    assert "already down" in cluster.ok("down")


def test_a_broker_that_cannot_start_fails_up_naming_its_log(cluster):
    # Broker 3's Kafka port is taken: it exits at start, and `up` says so at once.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind((HOST, kafka_port(cluster.base, 3)))
        blocker.listen()
        p = cluster.run("up", timeout=120)
    assert p.returncode != 0, p.stdout
    assert "broker 3 is not running" in p.stderr and str(cluster.log(3)) in p.stderr, p.stderr
    assert cluster.pid(3) is not None and not alive(cluster.pid(3))
    cluster.ok("down")
    assert cluster.ours() == []


def test_a_cluster_that_does_not_form_times_out_naming_the_logs(cluster, tmp_path):
    # Broker 3 gossips with another key than brokers 1 and 2: they never see each other.
    wrapper = tmp_path / "jet-other-key.sh"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" --node-id 3 "*) JET_GOSSIP_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=; export JET_GOSSIP_KEY;; esac\n'
        f'exec "{jet_bin()}" "$@"\n'
    )
    wrapper.chmod(0o755)
    cluster.env.update(JET_BIN=str(wrapper), JET_CLUSTER_TIMEOUT="5")
    p = cluster.run("up", timeout=120)
    assert p.returncode != 0, p.stdout
    assert "did not form within 5 s" in p.stderr and "waiting for [1 2 3]" in p.stderr, p.stderr
    for b in IDS:
        assert str(cluster.log(b)) in p.stderr, p.stderr
    assert len(cluster.ours()) == 3, "the brokers keep running for a look at them"
    cluster.ok("down")
    assert cluster.ours() == []


def test_a_cluster_id_starting_with_a_dash_is_passed_as_a_value(cluster):
    """A CI run's generated id was `-lbhrj7bB39MCC4NhLO4dA`: jet read `--cluster-id -lbh...` as
    an unknown option and no broker started. The script now generates ids that never start
    with '-' (Kafka's rule) and passes the id as `--cluster-id=ID`, so a given one works too."""
    cluster.env["JET_CLUSTER_ID"] = "-lbhrj7bB39MCC4NhLO4dA"
    cluster.ok("up")
    ids = {AdminClient({"bootstrap.servers": f"{HOST}:{kafka_port(cluster.base, b)}"}).list_topics(timeout=15).cluster_id for b in IDS}
    assert ids == {"-lbhrj7bB39MCC4NhLO4dA"}, ids


def test_bad_arguments_are_refused(cluster):
    for args in (["start", "4"], ["kill"], ["frobnicate"], []):
        p = cluster.run(*args)
        assert p.returncode != 0, f"{args}: {p.stdout}"
        assert p.stderr.strip(), f"{args}: an explanation on stderr"
    env_bad = dict(cluster.env, JET_RACKS="a,b")
    p = subprocess.run(["bash", str(SCRIPT), "status"], env=env_bad, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "JET_RACKS" in p.stderr, p.stderr


def test_the_script_is_shellcheck_clean():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (run compat-tests/run.sh)")
    p = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
