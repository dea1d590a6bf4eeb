"""The load generators, each run as its own process and read from its own summary output:
librdkafka's rdkafka_performance, Apache Kafka's ProducerPerformance / ConsumerPerformance,
and the open-loop LatencyProbe (bench/java). Throughput is records * record size over the
tool's own measured time; MB is 10^6 bytes."""

from __future__ import annotations

import json
import random
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

RUN_TIMEOUT_S = 900


@dataclass(frozen=True)
class Tools:
    rdkafka_performance: Path
    java_dir: Path  # bench/java/target: the jar and lib/

    @property
    def java_cp(self) -> str:
        jars = sorted(self.java_dir.glob("jet-bench-java-*.jar"))
        return f"{jars[0]}:{self.java_dir / 'lib'}/*"


@dataclass(frozen=True)
class Throughput:
    records: int
    seconds: float


def payload(size: int) -> str:
    """Random upper-case letters, as ProducerPerformance sends, for rdkafka_performance's -m
    (its default pattern is one 31-byte phrase repeated, which lz4 shrinks to nothing)."""
    rnd = random.Random(42)
    return "".join(chr(65 + rnd.randrange(26)) for _ in range(size))


def _run(argv: list[str], check_exit: bool = True) -> str:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if check_exit and p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {' '.join(argv[:12])} ...\n"
                           f"--- stdout ---\n{p.stdout[-3000:]}\n--- stderr ---\n{p.stderr[-3000:]}")
    return p.stdout


def _last(pattern: str, out: str, what: str) -> re.Match:
    found = list(re.finditer(pattern, out))
    if not found:
        raise RuntimeError(f"no {what} summary in the output:\n{out[-3000:]}")
    return found[-1]


def rd_produce(tools: Tools, bootstrap: str, topic: str, size: int, count: int, acks: str, compression: str) -> Throughput:
    """rdkafka_performance -P, as fast as it can, records spread over the partitions at random.

    The rate is the steady one, between 5 % and 95 % of the deliveries (read from its table
    output every 100 ms): librdkafka's broker thread can sleep up to a second before sending
    the first or the last batch, which would otherwise dominate a short run whatever the broker.
    The time returned is what the whole count takes at that rate."""
    # Its exit status compares a produced-message counter with the delivery reports, and
    # that counter can end one short with every record delivered (seen against Kafka:
    # 2,559,999 vs 2,560,000 delivered, 0 errors): the delivery check below is the real one.
    out = _run([str(tools.rdkafka_performance), "-P", "-t", topic, "-b", bootstrap, "-s", str(size), "-c", str(count),
                "-a", "-1" if acks == "all" else acks, "-z", compression, "-m", payload(size), "-u", "-i", "100"],
               check_exit=False)
    # table columns: elapsed(ms) msgs bytes rtt dr dr_m/s dr_MB/s dr_err tx_err outq offset
    rows = [[float(c) for c in ln.strip("| \n").split("|")] for ln in out.splitlines()
            if re.match(r"\|\s+\d", ln)]
    if not rows or rows[-1][4] != count or rows[-1][7]:
        raise RuntimeError(f"rdkafka_performance did not deliver {count} records:\n{out[-3000:]}")
    lo, hi = _crossing(rows, 0.05 * count), _crossing(rows, 0.95 * count)
    rate = 0.9 * count / max(hi - lo, 1.0) * 1000  # the table counts whole ms
    return Throughput(count, count / rate)


def _crossing(rows: list[list[float]], delivered: float) -> float:
    """The elapsed ms at which the delivered count reached `delivered` (linear between rows)."""
    prev_t, prev_dr = 0.0, 0.0
    for row in rows:
        t, dr = row[0], row[4]
        if dr >= delivered:
            return prev_t + (t - prev_t) * (delivered - prev_dr) / (dr - prev_dr)
        prev_t, prev_dr = t, dr
    raise ValueError(f"never reached {delivered} deliveries")


# A consume point reads its topic again until this much consuming time has been measured:
# reading 256 MB at 4 GB/s takes 64 ms, and a single stall of a few tens of ms (either
# broker, or the client's own fetch scheduling) would otherwise decide the point.
CONSUME_MIN_S = 0.5
CONSUME_MAX_RUNS = 5


def rd_consume(tools: Tools, bootstrap: str, topic: str, partitions: int, count: int) -> Throughput:
    """rdkafka_performance -C from the beginning of every partition (explicit partitions, no
    group), repeated until CONSUME_MIN_S of consuming has been measured."""
    argv = [str(tools.rdkafka_performance), "-C", "-t", topic, "-b", bootstrap, "-o", "beginning", "-e", "-c", str(count)]
    for p in range(partitions):
        argv += ["-p", str(p)]
    records, seconds = 0, 0.0
    for _ in range(CONSUME_MAX_RUNS):
        m = _last(r"% (\d+) messages \(\d+ bytes\) consumed in (\d+)ms", _run(argv), "rdkafka_performance consumer")
        got, ms = map(int, m.groups())
        if got != count:
            raise RuntimeError(f"rdkafka_performance consumed {got}/{count}")
        records += got
        seconds += max(ms, 1) / 1000  # the tool counts whole ms: a tiny run can show 0
        if seconds >= CONSUME_MIN_S:
            break
    return Throughput(records, seconds)


def java_produce(tools: Tools, bootstrap: str, topic: str, size: int, count: int, acks: str, compression: str) -> Throughput:
    """Apache Kafka's ProducerPerformance, unthrottled, with the client's defaults otherwise."""
    out = _run(["java", "-cp", tools.java_cp, "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
                "--num-records", str(count), "--record-size", str(size), "--throughput", "-1",
                "--producer-props", f"bootstrap.servers={bootstrap}", f"acks={acks}", f"compression.type={compression}"])
    m = _last(r"(\d+) records sent, ([\d.]+) records/sec", out, "ProducerPerformance")
    records, rate = int(m.group(1)), float(m.group(2))
    return Throughput(records, records / rate)


def java_consume_group(tools: Tools, bootstrap: str, topic: str, count: int, group: str) -> Throughput:
    """Apache Kafka's ConsumerPerformance (subscribes with a consumer group); the time is its
    fetch time, without the group join."""
    out = _run(["java", "-cp", tools.java_cp, "org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server",
                bootstrap, "--topic", topic, "--messages", str(count), "--group", group])
    header, row = [ln for ln in out.splitlines() if ln.strip()][-2:]
    cols = dict(zip([c.strip() for c in header.split(",")], [c.strip() for c in row.split(",")], strict=True))
    return Throughput(int(cols["data.consumed.in.nMsg"]), int(cols["fetch.time.ms"]) / 1000)


def probe(tools: Tools, bootstrap: str, topic: str, size: int, rate: int, seconds: float, warmup_s: float,
          acks: str, compression: str) -> dict:
    """LatencyProbe: fixed send rate, per-record ack latency from the record's due time."""
    out = _run(["java", "-cp", tools.java_cp, "jet.bench.LatencyProbe", "--bootstrap", bootstrap, "--topic", topic,
                "--size", str(size), "--rate", str(rate), "--seconds", str(seconds), "--warmup-seconds", str(warmup_s),
                "--acks", acks, "--compression", compression])
    result = json.loads(out.strip().splitlines()[-1])
    if result["errors"]:
        raise RuntimeError(f"LatencyProbe: {result['errors']} send errors")
    return result
