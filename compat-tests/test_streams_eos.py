"""Kafka Streams 4.1.1 WordCount with processing.guarantee=exactly_once_v2 on a 3-broker
cluster (examples/cluster.sh) across a SIGKILL of the leader of one of its input partitions,
with exact counts.

java/ StreamsWordCount.java runs input (text lines) -> flatMapValues (words) -> groupBy word
(a repartition topic) -> count (a state store whose changelog is a compacted internal topic)
-> output (word -> Long count), internal topics at replication factor 3, commit.interval.ms
100 and the record cache off, so that every input word gives one output record: for each word
a read_committed reader of the output must see exactly the counts 1, 2, .., N in order, N the
word's true number of occurrences. Exactly-once is what makes that hold across the kill: an
aborted transaction's counts are never read, a replay after a restore never repeats a count,
the state restored from the changelog never loses one.

The test creates the input and output topics (3 partitions, replication factor 3) and writes
a first batch of lines with a plain idempotent acks=all producer, starts the app, and once a
read_committed reader of the output has seen part of that batch counted, SIGKILLs the broker
leading input partition 0. It writes more lines with the broker down, waits (bounded) for the
app to count everything written so far, starts the broker again, writes the last lines, and
waits until every word's latest read_committed count is its true count. Then it stops the app
(a clean close, exit 0) and reads the whole output again read_committed, once every
transaction on it is decided. Every wait is on a condition with a deadline."""

from __future__ import annotations

import random
import re
import struct
import threading
import time
from collections import Counter, defaultdict

import pytest
from confluent_kafka import Consumer, IsolationLevel, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

import helpers
from test_cluster_clients import PARTITIONS, bootstrap, cluster, create_rf3_topic, leaders  # noqa: F401 (cluster: fixture)
from test_cluster_java import JavaRun

VOCAB = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november oscar "
    "papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu jet kafka streams once"
).split()
BEFORE_START = (3, 500)  # rounds x lines written before the app starts
WHILE_DOWN = (3, 200)  # ... with the killed broker down
AFTER_RESTART = (3, 200)  # ... after it is back
KILL_AT = 1500  # output records (counted words) read_committed before the kill


def words_of(line: str) -> list[str]:
    """What the topology counts: lower-cased, split on non-word characters (Java's \\W+)."""
    return [w for w in re.split(r"[^a-z0-9_]+", line.lower()) if w]


def make_line(rnd: random.Random) -> str:
    words = [rnd.choice(VOCAB) for _ in range(rnd.randint(1, 8))]
    words = [w.capitalize() if rnd.random() < 0.2 else w for w in words]
    seps = [rnd.choice((" ", " ", " ", ", ", " - ", ". ")) for _ in words[1:]]
    return words[0] + "".join(s + w for s, w in zip(seps, words[1:])) + rnd.choice(("", ".", "!"))


class Lines:
    """The input: an idempotent acks=all producer; each round is flushed and must be acked whole."""

    def __init__(self, bs: str, topic: str, seed: int):
        self.p = Producer({"bootstrap.servers": bs, "acks": "all", "enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": 120000})
        self.topic = topic
        self.rnd = random.Random(seed)
        self.sent: dict[str, str] = {}  # key -> line
        self.acked: set[str] = set()
        self.errors: list = []

    def _delivered(self, err, msg) -> None:
        if err is None:
            self.acked.add(msg.key().decode())
        else:
            self.errors.append(err)

    def round(self, lines: int) -> None:
        for _ in range(lines):
            key = f"l{len(self.sent)}"
            self.sent[key] = make_line(self.rnd)
            self.p.produce(self.topic, key=key.encode(), value=self.sent[key].encode(), on_delivery=self._delivered)
            self.p.poll(0)
        assert self.p.flush(150) == 0, "lines still undelivered 150 s after the round"
        assert not self.errors, f"{len(self.errors)} delivery errors, e.g. {self.errors[:3]}"
        assert self.acked == set(self.sent), f"{len(set(self.sent) - self.acked)} lines not acknowledged"

    def close(self) -> None:
        """Drops the producer (nothing is left to deliver once a round returned)."""
        self.p = None

    def counts(self) -> Counter:
        return Counter(w for line in self.sent.values() for w in words_of(line))


class CommittedReader:
    """A read_committed consumer of the output (assign, from the start) on a thread: the
    sequence of counts read per word, in order."""

    def __init__(self, bs: str, topic: str):
        self.c = Consumer(
            {
                "bootstrap.servers": bs,
                "group.id": helpers.unique_group("streams-eos-reader"),  # assign only, never joins
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self.c.assign([TopicPartition(topic, p, -2) for p in range(PARTITIONS)])  # -2: OFFSET_BEGINNING
        self.seqs: dict[str, list[int]] = defaultdict(list)
        self.records = 0
        self.bad: list[str] = []
        self.errors: list = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            m = self.c.poll(0.1)
            if m is None:
                continue
            if m.error():
                self.errors.append(m.error())
                continue
            with self._lock:
                self.records += 1
                key, value = m.key(), m.value()
                if key is None or value is None or len(value) != 8:
                    self.bad.append(f"partition {m.partition()} offset {m.offset()}: key {key!r} value {value!r}")
                    continue
                self.seqs[key.decode()].append(struct.unpack(">q", value)[0])

    def latest(self) -> dict[str, int]:
        with self._lock:
            return {w: s[-1] for w, s in self.seqs.items()}

    def snapshot(self) -> dict[str, list[int]]:
        with self._lock:
            return {w: list(s) for w, s in self.seqs.items()}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.c.close()


def check_sequences(seqs: dict[str, list[int]], true: Counter, final: bool) -> None:
    """Exactly-once with the cache off: each word's committed counts are 1, 2, .., k in order,
    never above its true count; when `final`, k is the true count for every word."""
    for word, seq in seqs.items():
        assert word in true, f"{word!r} was counted but never written"
        assert max(seq) <= true[word], f"{word!r} counted {max(seq)} times but written {true[word]} times (a duplicate): {seq[-20:]}"
        if seq != list(range(1, len(seq) + 1)):
            at = next(i for i, c in enumerate(seq) if c != i + 1)
            raise AssertionError(
                f"{word!r}: read_committed counts are not 1, 2, .., k: at position {at} {seq[max(0, at - 5) : at + 5]} "
                "(a repeated count is a replay, a skipped one a lost update, a lower one lost state)"
            )
    if final:
        missing = {w: (len(seqs.get(w, [])), n) for w, n in true.items() if len(seqs.get(w, [])) != n}
        assert not missing, f"words whose final count is wrong (read, true): {missing}"


def test_check_sequences_catches_replays_losses_and_overcounts():
    true = Counter({"a": 3, "b": 2})
    check_sequences({"a": [1, 2], "b": [1]}, true, final=False)
    check_sequences({"a": [1, 2, 3], "b": [1, 2]}, true, final=True)
    for bad, final in (
        ({"a": [1, 2, 3]}, True),  # b missing
        ({"a": [1, 2], "b": [1, 2]}, True),  # a short of its count
        ({"a": [1, 2, 2, 3], "b": [1, 2]}, False),  # a replayed count
        ({"a": [1, 3], "b": [1, 2]}, False),  # a skipped count
        ({"a": [1, 2, 1], "b": [1]}, False),  # state lost
        ({"a": [1, 2, 3, 4], "b": [1, 2]}, False),  # above the true count
        ({"c": [1]}, False),  # never written
    ):
        try:
            check_sequences(bad, true, final)
        except AssertionError:
            continue
        raise AssertionError(f"not caught: {bad}")


def all_decided(bs: str, topic: str) -> bool:
    """The read_committed end (last stable offset) equals the high watermark on every partition."""
    admin = AdminClient({"bootstrap.servers": bs})
    tps = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(PARTITIONS)}
    stable = {tp.partition: f.result(30).offset for tp, f in admin.list_offsets(tps, isolation_level=IsolationLevel.READ_COMMITTED).items()}
    high = {tp.partition: f.result(30).offset for tp, f in admin.list_offsets(tps, isolation_level=IsolationLevel.READ_UNCOMMITTED).items()}
    return stable == high


def read_to_end(bs: str, topic: str, what: str, extra: dict | None = None, deadline_s: float = 60) -> list:
    """Every record of every partition of `topic`, read by a fresh consumer to the end."""
    c = Consumer(
        {
            "bootstrap.servers": bs,
            "group.id": helpers.unique_group("streams-eos-read"),  # assign only, never joins
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            **(extra or {}),
        }
    )
    c.assign([TopicPartition(topic, p, -2) for p in range(PARTITIONS)])
    records: list = []
    at_end: set[int] = set()
    end = time.monotonic() + deadline_s
    try:
        while len(at_end) < PARTITIONS:
            assert time.monotonic() < end, f"the {what} was not read to its end within {deadline_s} s (at the end: {at_end})"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())
                continue
            at_end.discard(m.partition())
            records.append(m)
    finally:
        c.close()
    return records


def read_all_committed(bs: str, topic: str, deadline_s: float = 60) -> dict[str, list[int]]:
    """A fresh read_committed consumer reads every partition of `topic` to its end."""
    seqs: dict[str, list[int]] = defaultdict(list)
    for m in read_to_end(bs, topic, "output", {"isolation.level": "read_committed"}, deadline_s):
        seqs[m.key().decode()].append(struct.unpack(">q", m.value())[0])
    return dict(seqs)


def read_input(bs: str, topic: str, deadline_s: float = 60) -> dict[str, str]:
    """key -> line of every record of the input topic."""
    out: dict[str, str] = {}
    dups: list[str] = []
    for m in read_to_end(bs, topic, "input", None, deadline_s):
        key = m.key().decode()
        if key in out:
            dups.append(key)
        out[key] = m.value().decode()
    assert not dups, f"the input holds lines twice: {dups[:5]}"
    return out


@pytest.mark.timeout(420)
def test_streams_exactly_once_wordcount_across_a_leader_kill(cluster, java_main, tmp_path):
    started = time.monotonic()
    bs = bootstrap(cluster)
    source = helpers.unique_topic("wc-lines")
    sink = helpers.unique_topic("wc-counts")
    create_rf3_topic(bs, source)
    create_rf3_topic(bs, sink)
    app_id = helpers.unique_topic("wordcount")
    seed = random.randrange(1 << 30)
    print(f"seed {seed}, application.id {app_id}")

    lines = Lines(bs, source, seed)
    for _ in range(BEFORE_START[0]):
        lines.round(BEFORE_START[1])
    backlog = sum(lines.counts().values())

    reader = CommittedReader(bs, sink)
    argv = [*java_main[:-1], "jet.compat.StreamsWordCount", bs, app_id, source, sink, str(tmp_path / "streams-state")]
    java = JavaRun(argv, tmp_path / "streams.stderr")

    def running() -> bool:
        return java.p.poll() is None

    def violation() -> str | None:
        """What is wrong with the counts read so far (against every line written so far)."""
        try:
            check_sequences(reader.snapshot(), lines.counts(), final=False)
        except AssertionError as e:
            return str(e)
        return None

    def behind() -> str:
        latest, true = reader.latest(), lines.counts()
        off = {w: (latest.get(w), n) for w, n in true.items() if latest.get(w) != n}
        return f"{len(off)} words not at their count (read, true), e.g. {dict(list(off.items())[:8])}"

    def app_failed(what: str) -> str:
        """The app's state changes and the causes it logged (its whole output is printed too)."""
        said = [line for _, line in java.lines if line.startswith(("state ", "thread-error", "final-state"))]
        causes = sorted({line.strip() for line in java.stderr_path.read_text(errors="replace").splitlines() if line.startswith(("Caused by", "ERROR:"))})
        return f"Kafka Streams exited {java.p.returncode} {what}:\n  " + "\n  ".join(said + causes)

    timeline: list[str] = []
    try:
        # 1. Part of the backlog counted (read_committed), then SIGKILL the leader of input partition 0.
        helpers.wait_until(lambda: reader.records >= KILL_AT or not running(), 120, f"{KILL_AT} counted words read_committed")
        assert running(), app_failed(f"before {KILL_AT} words were counted")
        assert violation() is None, violation()
        victim = leaders(bs, source)[0][0]
        at_kill = reader.records
        killed = time.monotonic()
        cluster.ok("kill", str(victim))
        timeline.append(f"SIGKILL broker {victim} (leader of {source}[0]) with {at_kill} of the {backlog} backlog words counted, {killed - started:.1f} s in")

        # 2. More lines with the broker down; the app should count everything written so far.
        for _ in range(WHILE_DOWN[0]):
            lines.round(WHILE_DOWN[1])
        timeline.append(f"{WHILE_DOWN[0] * WHILE_DOWN[1]} more lines acknowledged {time.monotonic() - killed:.1f} s after the kill")
        helpers.wait_until(lambda: reader.records > at_kill or not running(), 120, "a counted word read_committed after the kill")
        assert running(), app_failed("after the kill")
        timeline.append(f"first word counted after the kill read {time.monotonic() - killed:.1f} s after it")
        down_total = sum(lines.counts().values())
        try:
            helpers.wait_until(lambda: reader.records >= down_total or not running(), 90, f"all {down_total} words written so far counted with broker {victim} down")
            caught_up_while_down: str | None = None
            timeline.append(f"all {down_total} words so far counted {time.monotonic() - killed:.1f} s after the kill, broker {victim} still down")
        except TimeoutError as e:
            caught_up_while_down = f"{e} ({reader.records} read)"
            timeline.append(f"NOT caught up with broker {victim} down: {reader.records} of {down_total}")
        assert running(), app_failed(f"with broker {victim} down")
        assert violation() is None, violation()

        # 3. The broker back, the last lines, and every word at its exact count.
        cluster.ok("start", str(victim))
        timeline.append(f"broker {victim} restarted {time.monotonic() - killed:.1f} s after the kill")
        for _ in range(AFTER_RESTART[0]):
            lines.round(AFTER_RESTART[1])
        true = lines.counts()
        try:
            helpers.wait_until(lambda: reader.latest() == dict(true) or not running() or violation(), 150, "every word's latest read_committed count to be its true count")
        except TimeoutError as e:
            raise AssertionError(f"{e}: {behind()}") from e
        assert running(), app_failed("before every word reached its count")
        assert violation() is None, violation()
        timeline.append(f"every word at its exact count {time.monotonic() - killed:.1f} s after the kill ({sum(true.values())} words, {len(lines.sent)} lines)")

        java.tell("stop")
        rc = java.finish(120)
    except BaseException:
        java.stop()
        reader.stop()
        lines.close()
        print("\n".join(timeline))
        print(java.output())
        raise
    reader.stop()
    lines.close()
    for line in timeline:
        print(line)
    states = [line for _, line in java.lines if line.startswith(("state ", "thread-error", "final-state"))]
    print("Kafka Streams: " + "; ".join(states))
    assert rc == 0, app_failed("after stop") + "\n" + java.output()
    assert "OK streams-wordcount" in java.output()
    assert not reader.bad, f"output records that are not word -> Long: {reader.bad[:5]}"

    # The live read_committed view: 1, 2, .., N per word, never above N.
    check_sequences(reader.snapshot(), true, final=True)
    # The input holds every line once (what the counts are checked against).
    assert read_input(bs, source) == lines.sent, "the input topic does not hold exactly the acknowledged lines"
    # The whole output read again once every transaction on it is decided.
    helpers.wait_until(lambda: all_decided(bs, sink), 60, f"every transaction on {sink} decided (last stable offset = high watermark)")
    final = read_all_committed(bs, sink)
    check_sequences(final, true, final=True)
    assert final == reader.snapshot(), "a second read_committed pass read other counts than the live one"
    print(f"{len(true)} words, {sum(true.values())} counted exactly once across the kill of broker {victim}")
    assert caught_up_while_down is None, f"Kafka Streams did not keep up with a broker down: {caught_up_while_down}"
