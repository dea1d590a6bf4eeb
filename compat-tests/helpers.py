"""Shared helpers: topic creation, polling with deadlines, subprocess runs."""

from __future__ import annotations

import subprocess
import time
import uuid

import kproto


def recent_base_ms() -> int:
    """A whole-second timestamp one hour ago: record timestamps well inside any default
    retention.ms and before Kafka 4's message.timestamp.after.max.ms (1 h)."""
    return (time.time_ns() // 1_000_000 - 3_600_000) // 1000 * 1000


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_until(cond, deadline_s: float = 30.0, what: str = "condition", interval: float = 0.05):
    """Poll cond() until it returns a truthy value; raise with `what` at the deadline."""
    end = time.monotonic() + deadline_s
    last_exc = None
    while time.monotonic() < end:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling, report the last one
            last_exc = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {deadline_s}s waiting for {what} (last error: {last_exc!r})")


def split_bootstrap(bootstrap: str) -> tuple[str, int]:
    h, p = bootstrap.rsplit(":", 1)
    return h, int(p)


def topic_partitions_ready(bootstrap: str, name: str, partitions: int) -> bool:
    """Raw Metadata v1: topic exists with `partitions` partitions, each with a leader."""
    host, port = split_bootstrap(bootstrap)
    _, md = kproto.probe(host, port)
    for err, tname, _internal, parts in md["topics"]:
        if tname == name:
            return err == 0 and len(parts) == partitions and all(p[0] == 0 and p[2] >= 0 for p in parts)
    return False


def create_topic(bootstrap: str, name: str, partitions: int = 1, configs: dict | None = None) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=dict(configs or {}))],
        operation_timeout=30,
        request_timeout=30,
    )
    fs[name].result(timeout=60)
    wait_until(lambda: topic_partitions_ready(bootstrap, name, partitions), 30, f"topic {name} to have leaders")


def run(cmd: list[str], input: bytes | None = None, timeout: float = 300, check: bool = True, env=None) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, env=env)
    if check and p.returncode != 0:
        err = p.stderr.decode(errors="replace")
        key = [ln for ln in err.splitlines() if ln.startswith(("MISMATCH", "ERROR", "FAIL"))][:5]
        raise AssertionError(
            f"command failed with exit {p.returncode}: {' '.join(map(str, cmd))}\n"
            + "".join(k + "\n" for k in key)
            + f"--- stdout (tail) ---\n{p.stdout[-8000:].decode(errors='replace')}\n"
            + f"--- stderr (tail) ---\n{p.stderr[-8000:].decode(errors='replace')}"
        )
    return p


def ck_consume_all(bootstrap: str, topic: str, partition: int, count: int, start_offset: int = 0, deadline_s: float = 60.0, extra: dict | None = None):
    """confluent-kafka: assign (no group coordination), read exactly `count` messages."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": "jet-compat-unused",  # required by the client; no group APIs are used with assign()
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
    }
    conf.update(extra or {})
    c = Consumer(conf)
    try:
        c.assign([TopicPartition(topic, partition, start_offset)])
        out = []
        end = time.monotonic() + deadline_s
        while len(out) < count:
            if time.monotonic() > end:
                raise TimeoutError(f"consumed {len(out)} of {count} from {topic}[{partition}] before the deadline")
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(f"consumer error: {m.error()}")
            out.append(m)
        return out
    finally:
        c.close()
