"""Shared helpers: topic creation, polling with deadlines, subprocess runs."""

from __future__ import annotations

import subprocess
import threading
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


def run_scenario(program: list[str], bootstrap: str, scenario: str, timeout: float = 240) -> str:
    """Run a client program's scenario (`program BOOTSTRAP SCENARIO`); it must print "OK SCENARIO"."""
    out = run([*program, bootstrap, scenario], timeout=timeout).stdout.decode()
    assert f"OK {scenario}" in out, out
    return out


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


# ---------------------------------------------------------------- consumer groups

# Smallest timeouts the clients and Kafka accept (group.min.session.timeout.ms = 6000), so
# joins, leaves and failure detection stay fast.
GROUP_SESSION_MS = 6000
GROUP_HEARTBEAT_MS = 500


def new_topic(bootstrap: str, partitions: int = 1, prefix: str = "t") -> str:
    name = unique_topic(prefix)
    create_topic(bootstrap, name, partitions)
    return name


def unique_group(prefix: str = "g") -> str:
    return unique_topic(prefix)


def produce_ids(bootstrap: str, topic: str, ids, partitions: int) -> set[str]:
    """Produce one record per id, value "<id>", id % partitions as its partition; all acked."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    errors = []
    values = set()
    for i in ids:
        v = str(i)
        p.produce(topic, value=v.encode(), partition=i % partitions, on_delivery=lambda err, _m: err and errors.append(err))
        values.add(v)
        p.poll(0)
    assert p.flush(60) == 0, "records still undelivered after 60 s"
    assert not errors, errors[:5]
    return values


class BackgroundProducer:
    """Produces values "<prefix><n>" round-robin over the partitions from a thread, about
    `rate` a second, until stop(), which flushes and returns the acknowledged values."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, prefix: str = "bg-", rate: float = 400.0):
        from confluent_kafka import Producer

        self._p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "message.timeout.ms": 120000})
        self._topic, self._partitions, self._prefix, self._rate = topic, partitions, prefix, rate
        self._acked: set[str] = set()
        self._errors: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _on_delivery(self, err, msg) -> None:
        if err is None:
            self._acked.add(msg.value().decode())
        else:
            self._errors.append(err)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            v = f"{self._prefix}{n}"
            self._p.produce(self._topic, value=v.encode(), partition=n % self._partitions, on_delivery=self._on_delivery)
            n += 1
            self._p.poll(1 / self._rate)  # serves delivery reports; paces the stream

    def acked_count(self) -> int:
        return len(self._acked)

    def stop(self) -> set[str]:
        self._stop.set()
        self._thread.join(30)
        assert self._p.flush(120) == 0, "records still undelivered 120 s after stop"
        assert not self._errors, f"{len(self._errors)} delivery errors, e.g. {self._errors[:3]}"
        return set(self._acked)


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "jet-compat-unused"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)[1] for p in range(partitions)}
    finally:
        c.close()


def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    """Admin OffsetFetch of a whole group: {(topic, partition): offset}.

    Not the metadata: confluent-kafka 2.16.1's admin result reads it past its end now and then
    (UnicodeDecodeError on the bytes that follow); Consumer.committed() reads it correctly."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    a = AdminClient({"bootstrap.servers": bootstrap})
    res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=30)[group].result(timeout=60)
    return {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions if tp.offset >= 0}


def wait_commits_at_end(bootstrap: str, group: str, topic: str, partitions: int, deadline_s: float = 60.0) -> None:
    """Poll until the group's committed offset of every partition equals its end offset."""
    state = {}

    def at_end() -> bool:
        state["ends"] = end_offsets(bootstrap, topic, partitions)
        got = committed_offsets(bootstrap, group)
        state["committed"] = {p: got.get((topic, p)) for p in range(partitions)}
        return state["committed"] == state["ends"]

    try:
        wait_until(at_end, deadline_s, f"group {group} commits to reach the end offsets")
    except TimeoutError as e:
        raise AssertionError(f"{e}; last ends {state.get('ends')}, committed {state.get('committed')}") from None


def ck_group_conf(bootstrap: str, group: str, **extra) -> dict:
    """confluent-kafka consumer settings for a subscribing group member (fast timeouts, auto commit)."""
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "session.timeout.ms": GROUP_SESSION_MS,
        "heartbeat.interval.ms": GROUP_HEARTBEAT_MS,
        "auto.offset.reset": "earliest",
        "auto.commit.interval.ms": 500,
    }
    conf.update(extra)
    return conf


def ck_drain(consumer, out: list, max_messages: int = 500, timeout: float = 0.05) -> None:
    """One consume() round: append the values read to `out`; raise on a consumer error."""
    for m in consumer.consume(max_messages, timeout):
        if m.error():
            raise AssertionError(f"consumer error: {m.error()}")
        out.append(m.value().decode())


def describe_group(bootstrap: str, group: str):
    """confluent-kafka ConsumerGroupDescription (state, members with their assignments)."""
    from confluent_kafka.admin import AdminClient

    a = AdminClient({"bootstrap.servers": bootstrap})
    return a.describe_consumer_groups([group], request_timeout=30)[group].result(timeout=60)


def member_partitions(desc) -> list[set[tuple[str, int]]]:
    """One set of (topic, partition) per member of a ConsumerGroupDescription."""
    return [{(tp.topic, tp.partition) for tp in m.assignment.topic_partitions} for m in desc.members]


def is_partitioned(assignments: list[set], everything: set) -> bool:
    """True when the member assignments are disjoint and together cover `everything`."""
    union = set().union(*assignments) if assignments else set()
    return union == everything and sum(len(a) for a in assignments) == len(everything)


def assert_all_consumed(produced: set[str], consumed, what: str = "group") -> None:
    """At-least-once: every produced value was consumed (duplicates are allowed)."""
    missing = produced - set(consumed)
    assert not missing, f"{what}: {len(missing)} of {len(produced)} produced records never consumed, e.g. {sorted(missing)[:10]}"
