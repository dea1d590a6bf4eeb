"""Jet vs Apache Kafka benchmark orchestrator (run it through compat-tests/bench/run.sh).

Every repetition starts one cluster of each kind (brokers.KINDS), records start-to-ready and
idle RSS, then runs every point of the matrix against each kind in turn (the order rotates
from point to point), each point on a fresh topic. Topics are kept until the repetition
ends (a deletion's file removal, which Kafka delays by a minute, would land in a later
point); the data dirs go when the clusters stop. The report gives medians over
repetitions and Jet/Kafka ratios; raw.json keeps every run."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import brokers
import failover
import loads
import report

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import helpers  # noqa: E402  (compat-tests/helpers.py: unique_topic, leader wait)

IDLE_SETTLE_S = 2.0


@dataclass(frozen=True)
class Point:
    """One cell of the matrix. test: "produce" (rdkafka_performance, followed by a consume
    from the start when acks=all), "java-produce" (ProducerPerformance), "probe" (LatencyProbe)."""

    test: str
    size: int
    acks: str
    partitions: int
    compression: str
    rate: int = 0  # probe only: records/s


PRESETS = {
    "full": dict(sizes=[100, 1024, 16384], acks=["1", "all"], partitions=[1, 8], compression=["none", "lz4"],
                 reps=3, produce_mb=256, warmup_mb=256, probe_rates=[2000, 10000], probe_seconds=15,
                 probe_warmup=2, groups=True),
    "quick": dict(sizes=[1024], acks=["1", "all"], partitions=[1, 8], compression=["none"],
                  reps=1, produce_mb=256, warmup_mb=256, probe_rates=[5000], probe_seconds=8,
                  probe_warmup=2, groups=True),
    "smoke": dict(sizes=[1024], acks=["all"], partitions=[1], compression=["none"],
                  reps=1, produce_mb=2, warmup_mb=1, probe_rates=[200], probe_seconds=1, probe_warmup=0.5,
                  kinds=["jet-fsync", "jet-interval"], groups=False),
}
for _preset in PRESETS.values():
    _preset.setdefault("idle_partitions", [])


def matrix(a: argparse.Namespace) -> list[Point]:
    points = [Point("produce", s, k, p, c) for s in a.sizes for k in a.acks for p in a.partitions for c in a.compression]
    points += [Point("java-produce", 1024, "all", p, "none") for p in a.partitions]
    points += [Point("probe", 1024, k, 1, "none", r) for k in a.acks for r in a.probe_rates]
    return points


def run_point(a: argparse.Namespace, tools: loads.Tools, cluster: brokers.Cluster, pt: Point, rep: int) -> list[dict]:
    topic = helpers.unique_topic("bench")
    create_topic(cluster.bootstrap, topic, pt.partitions, a.replication_factor)
    base = dict(asdict(pt), kind=cluster.kind, rep=rep, load1=os.getloadavg()[0])
    count = int(a.produce_mb * 1e6) // pt.size
    if pt.test == "probe":
        with brokers.Usage(cluster) as u:
            r = loads.probe(tools, cluster.bootstrap, topic, pt.size, pt.rate, a.probe_seconds, a.probe_warmup,
                            pt.acks, pt.compression)
        return [dict(base, **r, peak_rss_mb=u.peak_rss_kb / 1024)]
    produce = loads.rd_produce if pt.test == "produce" else loads.java_produce
    with brokers.Usage(cluster) as u:
        t = produce(tools, cluster.bootstrap, topic, pt.size, count, pt.acks, pt.compression)
    rows = [_throughput_row(base, pt.size, t, u)]
    if pt.test == "produce" and pt.acks == "all":
        with brokers.Usage(cluster) as u:
            t = loads.rd_consume(tools, cluster.bootstrap, topic, pt.partitions, count)
        rows.append(_throughput_row(dict(base, test="consume"), pt.size, t, u))
        if a.groups and pt.size == 1024:
            with brokers.Usage(cluster) as u:
                t = loads.java_consume_group(tools, cluster.bootstrap, topic, count, f"g-{topic}")
            rows.append(_throughput_row(dict(base, test="java-consume-group"), pt.size, t, u))
    return rows


def create_topic(bootstrap: str, topic: str, partitions: int, replication_factor: int, timeout_s: float = 60) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, replication_factor)],
                        operation_timeout=timeout_s / 2)[topic].result(timeout_s)
    first = bootstrap.split(",")[0]  # every node answers Metadata for the whole cluster
    helpers.wait_until(lambda: helpers.topic_partitions_ready(first, topic, partitions), timeout_s, f"{topic} leaders")


def _throughput_row(base: dict, size: int, t: loads.Throughput, u: brokers.Usage) -> dict:
    gb = t.records * size / 1e9
    return dict(base, records=t.records, seconds=t.seconds, mb_s=t.records * size / 1e6 / t.seconds,
                msg_s=t.records / t.seconds, cpu_s=u.cpu_s, cpu_s_per_gb=u.cpu_s / gb, peak_rss_mb=u.peak_rss_kb / 1024)


def warm_up(a: argparse.Namespace, tools: loads.Tools, cluster: brokers.Cluster) -> None:
    """Unmeasured produce + consume so that no kind is measured cold (the JVM's JIT, page cache)."""
    topic = helpers.unique_topic("warmup")
    create_topic(cluster.bootstrap, topic, 8, a.replication_factor)
    count = int(a.warmup_mb * 1e6) // 1024
    loads.rd_produce(tools, cluster.bootstrap, topic, 1024, count, "1", "none")
    loads.rd_consume(tools, cluster.bootstrap, topic, 8, count)


def run_rep(a: argparse.Namespace, tools: loads.Tools, points: list[Point], rep: int) -> list[dict]:
    clusters = [brokers.make_cluster(k, a.brokers, a.cache / "run" / k, a.jet_bin, a.kafka_libs) for k in a.kinds]
    rows = []
    try:
        # Jet first: a JVM keeps compiling for seconds after it is ready, which would slow
        # the starts measured after it.
        for c in sorted(clusters, key=lambda c: c.kind == "kafka"):
            c.start()
            print(f"[rep {rep}] {c.kind} ready in {c.ready_s() * 1000:.0f} ms at {c.bootstrap}", flush=True)
        time.sleep(IDLE_SETTLE_S)
        rows += [dict(test="process", kind=c.kind, rep=rep, ready_ms=c.ready_s() * 1000,
                      idle_rss_mb=c.rss_kb() / 1024) for c in clusters]
        for c in clusters:
            warm_up(a, tools, c)
        for i, pt in enumerate(points):
            shift = (i + rep) % len(clusters)
            for c in clusters[shift:] + clusters[:shift]:
                # Untimed: write back the dirty pages earlier points left (Kafka's and
                # jet-interval's logs), so no point pays for another's writeback.
                os.sync()
                for row in run_point(a, tools, c, pt, rep):
                    print(f"[rep {rep}] {report.describe(row)}", flush=True)
                    rows.append(row)
        for partitions in a.idle_partitions:
            for c in clusters:
                row = idle_cpu(a, c, partitions, rep)
                print(f"[rep {rep}] {report.describe(row)}", flush=True)
                rows.append(row)
        if a.failover:
            # Last: it kills a broker of each cluster.
            for c in clusters:
                row = failover_time(a, c, rep)
                print(f"[rep {rep}] {report.describe(row)}", flush=True)
                rows.append(row)
    finally:
        for c in clusters:
            c.stop()
            c.wipe()
    return rows


def idle_cpu(a: argparse.Namespace, cluster: brokers.Cluster, partitions: int, rep: int) -> dict:
    """Broker CPU while nothing is produced or fetched, with `partitions` more partitions
    (each of the run's replication factor) than the cluster already had: what hosting them
    costs (raft heartbeats, timers, the log cleaner's and the controller's passes)."""
    # In topics of at most 1,000 partitions: one CreateTopics of 10,000 outlasts Jet's
    # 15 s admin timeout (the topic is still created, as Kafka's is after a timeout).
    left = partitions
    while left > 0:
        chunk = min(left, 1000)
        topic = helpers.unique_topic(f"idle{partitions}")
        create_topic(cluster.bootstrap, topic, chunk, a.replication_factor, timeout_s=max(60.0, chunk / 20))
        left -= chunk
    time.sleep(a.idle_settle_seconds)  # let creation's work end: this measures the steady state
    with brokers.Usage(cluster) as u:
        time.sleep(a.idle_seconds)  # the measurement window itself
    per_broker = u.cpu_s / a.idle_seconds / len(cluster.nodes) * 100
    return dict(test="idle", kind=cluster.kind, rep=rep, size=0, acks="-", partitions=partitions,
                compression="none", replication_factor=a.replication_factor, seconds=a.idle_seconds,
                cpu_s=u.cpu_s, cpu_pct_per_broker=per_broker, peak_rss_mb=u.peak_rss_kb / 1024)


def failover_time(a: argparse.Namespace, cluster: brokers.Cluster, rep: int) -> dict:
    """SIGKILL of a one-partition topic's leader under load (see failover.py)."""
    topic = helpers.unique_topic("failover")
    create_topic(cluster.bootstrap, topic, 1, a.replication_factor)
    r = failover.measure(cluster, topic)
    return dict(test="failover", kind=cluster.kind, rep=rep, size=1024, acks="all", partitions=1,
                compression="none", replication_factor=a.replication_factor, **r)


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    mem_kb = next(int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    return dict(cpu=cpu, cores=os.cpu_count(), mem_gib=round(mem_kb / 2**20, 1), kernel=platform.release(),
                jet_commit=commit, java=subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
                .splitlines()[0])


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="preset", action="store_const", const="quick", help="1 KiB rows, 1 repetition")
    mode.add_argument("--smoke", dest="preset", action="store_const", const="smoke", help="seconds; Jet only")
    p.set_defaults(preset="full")
    p.add_argument("--jet-bin", type=Path, required=True)
    p.add_argument("--rdkafka-performance", type=Path, required=True)
    p.add_argument("--java-dir", type=Path, required=True, help="bench/java/target")
    p.add_argument("--kafka-libs", type=Path, required=True)
    p.add_argument("--cache", type=Path, required=True, help="data dirs go to CACHE/run, results to CACHE/results")
    p.add_argument("--out", type=Path, help="results folder (default CACHE/results/<UTC time>)")
    p.add_argument("--brokers", type=int, default=1, help="brokers per cluster (default 1)")
    p.add_argument("--replication-factor", type=int, default=1, help="of every benchmark topic (default 1)")
    p.add_argument("--kinds", nargs="+", choices=brokers.KINDS, help=f"default {' '.join(brokers.KINDS)}")
    p.add_argument("--sizes", nargs="+", type=int)
    p.add_argument("--acks", nargs="+", choices=["1", "all"])
    p.add_argument("--partitions", nargs="+", type=int)
    p.add_argument("--compression", nargs="+", choices=["none", "lz4"])
    p.add_argument("--reps", type=int)
    p.add_argument("--produce-mb", type=float, help="MB (10^6 bytes) each produce point writes")
    p.add_argument("--warmup-mb", type=float, help="MB produced and consumed, unmeasured, after each start")
    p.add_argument("--probe-rates", nargs="+", type=int, help="LatencyProbe send rates, records/s (1 KiB)")
    p.add_argument("--probe-seconds", type=float)
    p.add_argument("--probe-warmup", type=float, help="seconds the probe sends before it measures")
    p.add_argument("--idle-partitions", nargs="*", type=int,
                   help="after the matrix, add a topic of this many partitions and measure idle broker CPU "
                        "(repeatable values, e.g. 1000 10000; none by default)")
    p.add_argument("--idle-seconds", type=float, default=30.0, help="idle CPU measurement window")
    p.add_argument("--idle-settle-seconds", type=float, default=10.0, help="wait after creating the idle topic")
    p.add_argument("--failover", action="store_true",
                   help="last, SIGKILL the leader of a one-partition topic of each cluster under an acks=all "
                        "producer and time kill → next acknowledged write (needs --brokers 3 or more)")
    p.add_argument("--groups", action=argparse.BooleanOptionalAction,
                   help="consume the 1 KiB acks=all points again with ConsumerPerformance (a consumer group)")
    a = p.parse_args(argv)
    if a.failover and a.brokers < 3:
        p.error("--failover needs --brokers 3 or more (a leader to kill and a majority left)")
    for k, v in PRESETS[a.preset].items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)
    if a.kinds is None:
        a.kinds = list(brokers.KINDS)
    return a


def main(argv: list[str]) -> None:
    a = parse_args(argv)
    # SIGTERM unwinds like an exception, so the brokers are stopped by run_rep's `finally`
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tools = loads.Tools(a.rdkafka_performance, a.java_dir)
    out = a.out or a.cache / "results" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    points = matrix(a)
    started = time.time()
    meta = dict(machine=machine(), preset=a.preset, brokers=a.brokers, replication_factor=a.replication_factor,
                kinds=a.kinds, reps=a.reps,
                produce_mb=a.produce_mb, warmup_mb=a.warmup_mb, probe_seconds=a.probe_seconds,
                probe_warmup=a.probe_warmup,
                durability={k: brokers.DURABILITY[k] for k in a.kinds},
                started=datetime.now(timezone.utc).isoformat(timespec="seconds"), load1_before=os.getloadavg()[0])
    rows = []
    for rep in range(a.reps):
        rows += run_rep(a, tools, points, rep)
        meta["minutes"] = round((time.time() - started) / 60, 1)
        (out / "raw.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))  # kept if a later rep fails
    report.write(out, meta, rows)
    print(f"results: {out}/results.md, {out}/chart.png, {out}/raw.json")


if __name__ == "__main__":
    main(sys.argv[1:])
