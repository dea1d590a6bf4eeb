"""A full disk (a small tmpfs) with a real consumer group (confluent-kafka).

While the disk is full: produce gets KAFKA_STORAGE_ERROR and the broker says so, rate
limited; a consumer joining the group gets a retriable error and the coordinator backs
off instead of rebalancing in a loop (the old broker logged thousands of rebalances in a
few seconds); reads go on. The broker restarts on the full disk (clean and after
SIGKILL) and serves reads. Once space returns, produce and the group resume by
themselves, and nothing that was acknowledged is lost.

Needs root (mount -t tmpfs); skipped otherwise and against an external broker.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

import helpers
from jetproc import JetBroker

EXTERNAL = os.environ.get("JET_BOOTSTRAP")
pytestmark = pytest.mark.skipif(
    bool(EXTERNAL) or os.geteuid() != 0, reason="needs root (tmpfs mount) and a broker process of its own"
)

DISK_MB = 32
GROUP = "full-disk-group"
TOPIC = "full-disk"
# The window in which a consumer tries to join the group on the full disk.
JOIN_WINDOW_S = 15.0
# Rebalances the coordinator may start in that window: its backoff (0.5 s doubling to 10 s)
# allows about five; the unbounded loop started thousands.
MAX_REBALANCES_IN_WINDOW = 10


@pytest.fixture
def small_disk(tmp_path: Path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode(errors='replace')}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def disk_broker(small_disk: Path, tmp_path: Path):
    # The broker's own log stays off the small disk.
    b = JetBroker(data_dir=small_disk / "data", log_path=tmp_path / "jet.log", extra_args=["--set", "group.initial.rebalance.delay.ms=0"])
    b.start()
    try:
        yield b
    finally:
        if b.alive():
            b.kill9()


def produce(bootstrap: str, values: list[bytes], **conf) -> tuple[set[bytes], list]:
    """acks=all, no retries: returns the acknowledged values and the delivery errors."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0, "linger.ms": 5, "message.timeout.ms": 10000, **conf})
    acked: set[bytes] = set()
    errors: list = []

    def on_delivery(err, msg):
        if err:
            errors.append(err)
        else:
            acked.add(msg.value())

    for v in values:
        while True:
            try:
                p.produce(TOPIC, value=v, partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0, "records still undelivered after 60 s"
    return acked, errors


def read_all(bootstrap: str) -> set[bytes]:
    """Every record of the topic, without a group (assign from offset 0 to the end)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    try:
        _, high = helpers.wait_until(
            lambda: c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=5), 30, "the topic's offsets"
        )
    finally:
        c.close()
    return {m.value() for m in helpers.ck_consume_all(bootstrap, TOPIC, 0, high, deadline_s=120)}


def group_consumer(bootstrap: str, **conf):
    from confluent_kafka import Consumer

    return Consumer(helpers.ck_group_conf(bootstrap, GROUP, **{"auto.offset.reset": "earliest", "enable.auto.commit": False, **conf}))


def fill(mnt: Path) -> None:
    """Takes every free block left on the disk (into a new file: rewriting an old one would
    free its blocks first)."""
    n = len(list(mnt.glob("fill-*")))
    subprocess.run(["dd", "if=/dev/zero", f"of={mnt / f'fill-{n}'}", "bs=64k"], capture_output=True)
    subprocess.run(["sync"])


def unfill(mnt: Path) -> None:
    for f in mnt.glob("fill-*"):
        f.unlink()


def free_bytes(mnt: Path) -> int:
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


def broker_lines(b: JetBroker, since: int, pattern: str) -> list[str]:
    return [ln for ln in b.log_since(since, limit=10**9).splitlines() if re.search(pattern, ln)]


def test_full_disk_no_rebalance_storm_restart_reads_and_resume(disk_broker: JetBroker, small_disk: Path):
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    b = disk_broker
    helpers.create_topic(b.bootstrap, TOPIC, 1)
    acked, errors = produce(b.bootstrap, [f"a-{i}".encode() for i in range(200)])
    assert not errors and len(acked) == 200

    # A group that works: it consumes everything and commits.
    c = group_consumer(b.bootstrap)
    c.subscribe([TOPIC])
    got: list = []
    helpers.wait_until(lambda: helpers.ck_drain(c, got) or len(got) >= 200, 60, "the group to consume")
    c.commit(asynchronous=False)
    c.close()

    # Fill the disk through the broker, then take whatever is left.
    big = b"x" * 16384
    batch = 0
    while True:
        more, errors = produce(b.bootstrap, [b"b-%d-%d-" % (batch, i) + big for i in range(100)])
        acked |= more
        batch += 1
        if errors:
            assert all(e.code() == KafkaError.KAFKA_STORAGE_ERROR for e in errors), errors[:3]
            break
        assert batch < 200, "the disk never filled"
    fill(small_disk)
    assert free_bytes(small_disk) == 0

    # Commits until __consumer_offsets' last page is used up too (a record that still fits
    # in a page the file already has needs no new space).
    c = group_consumer(b.bootstrap)
    failed_commit = None
    for _ in range(3000):
        try:
            c.commit(offsets=[TopicPartition(TOPIC, 0, 200)], asynchronous=False)
        except KafkaException as e:
            failed_commit = e.args[0]
            break
    c.close()
    assert failed_commit is not None, "commits never failed on the full disk"
    assert failed_commit.retriable() or failed_commit.code() in (
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    ), failed_commit

    # A consumer joins the group on the full disk: the coordinator backs off.
    mark = b.log_size()
    assigned: list[float] = []
    c = group_consumer(b.bootstrap, **{"session.timeout.ms": helpers.GROUP_SESSION_MS})
    c.subscribe([TOPIC], on_assign=lambda _c, _p: assigned.append(time.monotonic()))
    end = time.monotonic() + JOIN_WINDOW_S
    while time.monotonic() < end:
        c.poll(0.2)
    window = b.log_since(mark, limit=10**9)
    c.close()
    rebalances = [ln for ln in window.splitlines() if "preparing to rebalance" in ln and GROUP in ln]
    write_failures = [ln for ln in window.splitlines() if "__consumer_offsets" in ln and ("WARN" in ln or "ERROR" in ln)]
    print(f"full disk, {JOIN_WINDOW_S:.0f} s window: {len(rebalances)} rebalances started, "
          f"{len(write_failures)} __consumer_offsets warnings, {len(assigned)} assignments")
    assert len(rebalances) <= MAX_REBALANCES_IN_WINDOW, (
        f"{len(rebalances)} rebalances in {JOIN_WINDOW_S} s on a full disk (a loop)\n" + "\n".join(rebalances[:5])
    )
    assert len(write_failures) <= 5, "\n".join(write_failures[:10])

    # Produce fails with KAFKA_STORAGE_ERROR, and the broker says so, rate limited.
    mark = b.log_size()
    # Free bytes the broker can still use (the tail of the active segment's last page, or
    # pages freed since the fill) take small records until one is refused; those records
    # are acknowledged and must survive like any other.
    print(f"full disk: {free_bytes(small_disk)} bytes free before the small records")
    for round_ in range(100):
        more, errors = produce(b.bootstrap, [b"small-%d-%d" % (round_, i) for i in range(100)])
        acked |= more
        if errors:
            assert {e.code() for e in errors} == {KafkaError.KAFKA_STORAGE_ERROR}, errors[:3]
            print(f"full disk: {round_ * 100 + len(more)} small records fitted before one was refused")
            break
    else:
        pytest.fail("small records were never refused on the full disk")
    fill(small_disk)
    # A batch of 100 was refused, but the active segment's last block may still hold a
    # smaller one (its tail is allocated; a CI run acknowledged one record there): single
    # records until one is refused, acknowledged ones kept like any other.
    for i in range(100):
        more, errors = produce(b.bootstrap, [b"tail-%d" % i], **{"linger.ms": 0})
        acked |= more
        if errors:
            assert {e.code() for e in errors} == {KafkaError.KAFKA_STORAGE_ERROR}, errors
            print(f"full disk: {i} single records fitted in the last block before one was refused")
            break
    else:
        pytest.fail("single records were never refused on the full disk")
    more, errors = produce(b.bootstrap, [b"refused-%d" % i for i in range(300)], **{"linger.ms": 0})
    assert not more and len(errors) == 300
    assert {e.code() for e in errors} == {KafkaError.KAFKA_STORAGE_ERROR}
    logged = broker_lines(b, mark, r"produce failed")
    assert 1 <= len(logged) <= 2, f"{len(logged)} log lines for 300+ failed produces:\n" + "\n".join(logged[:5])

    # Reads go on.
    assert acked <= read_all(b.bootstrap), "acknowledged records not readable on the full disk"

    # The broker starts on the full disk, cleanly stopped and after SIGKILL, and serves reads.
    b.stop()
    fill(small_disk)  # what the shutdown freed (a clean stop cannot write its markers)
    assert free_bytes(small_disk) == 0
    b.start()
    assert acked <= read_all(b.bootstrap), "acknowledged records not readable after a restart on the full disk"
    b.kill9()
    fill(small_disk)
    assert free_bytes(small_disk) == 0
    b.start()
    assert acked <= read_all(b.bootstrap), "acknowledged records not readable after SIGKILL + restart on the full disk"

    # Space returns: produce and the group resume by themselves.
    unfill(small_disk)
    resumed: set[bytes] = set()

    def produce_works() -> bool:
        more, _ = produce(b.bootstrap, [b"c-%d" % len(resumed)])
        resumed.update(more)
        return bool(more)

    helpers.wait_until(produce_works, 30, "produce to resume once space returned", interval=0.5)
    more, errors = produce(b.bootstrap, [b"c-more-%d" % i for i in range(100)])
    assert not errors
    acked |= resumed | more

    c = group_consumer(b.bootstrap)
    c.subscribe([TOPIC])
    seen: list = []
    helpers.wait_until(
        lambda: helpers.ck_drain(c, seen) or "c-more-99" in seen, 60, "the group to consume again"
    )
    c.commit(asynchronous=False)
    c.close()

    # Nothing acknowledged was lost, across one more SIGKILL.
    b.kill_and_restart()
    missing = acked - read_all(b.bootstrap)
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:3]}"
    b.stop()
