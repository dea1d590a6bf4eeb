"""kcat (Debian's 1.7.1, linked against the old librdkafka 2.0.2)."""

from __future__ import annotations

import os
import random
import re
import shutil

import pytest

import helpers

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat not installed (run compat-tests/run.sh)")

BASE_X = ["-X", "socket.timeout.ms=30000", "-X", "api.version.request=true"]


def kcat(broker, *args, input: bytes | None = None, timeout: float = 180):
    return helpers.run([KCAT, "-b", broker.bootstrap, *BASE_X, *args], input=input, timeout=timeout)


def test_kcat_version_is_debian_old_librdkafka():
    out = helpers.run([KCAT, "-V"]).stdout.decode()
    assert "librdkafka" in out, out


def test_metadata_lists_broker_and_topic(broker, topic):
    t = topic(partitions=3)
    out = kcat(broker, "-L", "-t", t).stdout.decode()
    assert f"broker 1 at {broker.bootstrap}" in out, out
    assert f'topic "{t}" with 3 partitions:' in out, out
    for p in range(3):
        assert re.search(rf"partition {p}, leader 1, replicas: 1, isrs: 1", out), out
    # full listing (-L without -t) names the broker and our topic as well
    out_all = kcat(broker, "-L").stdout.decode()
    assert " 1 brokers:" in out_all and f"broker 1 at {broker.bootstrap}" in out_all, out_all
    assert f'topic "{t}" with 3 partitions:' in out_all, out_all


def test_produce_100k_lines_and_consume_identical(broker, topic):
    t = topic()
    rng = random.Random(1234)
    n = 100_000
    lines = [f"line-{i:06d}-" + "x" * rng.randint(0, 40) + f"-{rng.getrandbits(32):08x}" for i in range(n)]
    payload = ("\n".join(lines) + "\n").encode()
    kcat(broker, "-P", "-t", t, "-p", "0", "-X", "linger.ms=20", input=payload, timeout=300)

    got = kcat(broker, "-C", "-t", t, "-p", "0", "-o", "beginning", "-e", "-q", timeout=300).stdout
    assert got == payload, _diff(got.decode().splitlines(), lines)

    got_offsets = kcat(broker, "-C", "-t", t, "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%o %s\n", timeout=300).stdout.decode()
    expected = "".join(f"{i} {line}\n" for i, line in enumerate(lines))
    assert got_offsets == expected, _diff(got_offsets.splitlines(), expected.splitlines())

    # end offset == n, beginning == 0
    assert kcat(broker, "-Q", "-t", f"{t}:0:-1").stdout.decode().strip() == f"{t} [0] offset {n}"
    assert kcat(broker, "-Q", "-t", f"{t}:0:-2").stdout.decode().strip() == f"{t} [0] offset 0"

    # consume from the middle (absolute offset) and the last 10 (relative -10)
    mid = kcat(broker, "-C", "-t", t, "-p", "0", "-o", "54321", "-c", "5", "-q", "-f", "%o:%s\n").stdout.decode()
    assert mid == "".join(f"{i}:{lines[i]}\n" for i in range(54321, 54326)), mid
    tail = kcat(broker, "-C", "-t", t, "-p", "0", "-o", "-10", "-e", "-q", "-f", "%o:%s\n").stdout.decode()
    assert tail == "".join(f"{i}:{lines[i]}\n" for i in range(n - 10, n)), tail


def test_offsets_for_times(broker, topic):
    from confluent_kafka import Producer

    t = topic()
    base = helpers.recent_base_ms()
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    # 10 records, timestamps base, base+1000, ... (CreateTime, set explicitly)
    for i in range(10):
        p.produce(t, value=f"v{i}".encode(), partition=0, timestamp=base + i * 1000)
    assert p.flush(30) == 0

    def q(ts):
        return kcat(broker, "-Q", "-t", f"{t}:0:{ts}").stdout.decode().strip()

    assert q(base) == f"{t} [0] offset 0"
    assert q(base - 5) == f"{t} [0] offset 0"
    assert q(base + 5000) == f"{t} [0] offset 5"
    assert q(base + 4001) == f"{t} [0] offset 5"  # first record with ts >= query
    assert q(base + 9000) == f"{t} [0] offset 9"
    assert q(base + 9001) == f"{t} [0] offset -1"  # no such record: offset -1
    assert q(-1) == f"{t} [0] offset 10"
    assert q(-2) == f"{t} [0] offset 0"

    got = kcat(broker, "-C", "-t", t, "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%o %T %s\n").stdout.decode()
    assert got == "".join(f"{i} {base + i * 1000} v{i}\n" for i in range(10)), got


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_each_codec_roundtrip(broker, topic, codec):
    t = topic()
    rng = random.Random(codec)
    n = 20_000
    # mix of highly compressible and random lines so every codec produces multi-record batches
    lines = [
        (f"{codec}-{i:05d}-" + ("abc" * rng.randint(0, 50) if i % 2 else os.urandom(rng.randint(1, 60)).hex()))
        for i in range(n)
    ]
    payload = ("\n".join(lines) + "\n").encode()
    kcat(broker, "-P", "-t", t, "-p", "0", "-X", f"compression.codec={codec}", "-X", "linger.ms=50", "-X", "batch.num.messages=1000", input=payload)
    got = kcat(broker, "-C", "-t", t, "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%o %s\n").stdout.decode()
    expected = "".join(f"{i} {line}\n" for i, line in enumerate(lines))
    assert got == expected, _diff(got.splitlines(), expected.splitlines())


def test_keys_and_headers_roundtrip(broker, topic):
    t = topic()
    rows = [(f"key{i}", f"value {i} with spaces") for i in range(50)]
    rows += [("", "empty-key")]  # key:"" -> empty (not null) key
    payload = "".join(f"{k}:{v}\n" for k, v in rows).encode()
    kcat(
        broker,
        "-P",
        "-t",
        t,
        "-p",
        "0",
        "-K:",
        "-H",
        "trace=abc123",
        "-H",
        "tenant=jet",
        "-H",
        "empty=",
        input=payload,
    )
    got = kcat(
        broker,
        "-C",
        "-t",
        t,
        "-p",
        "0",
        "-o",
        "beginning",
        "-e",
        "-q",
        "-f",
        "topic=%t part=%p off=%o key=%k keylen=%K val=%s vallen=%S headers=%h\n",
    ).stdout.decode()
    expected = "".join(
        f"topic={t} part=0 off={i} key={k} keylen={len(k)} val={v} vallen={len(v)} headers=trace=abc123,tenant=jet,empty=\n"
        for i, (k, v) in enumerate(rows)
    )
    assert got == expected, _diff(got.splitlines(), expected.splitlines())

    # without -K: the line is the value and the key is null (%K prints -1)
    t2 = topic()
    kcat(broker, "-P", "-t", t2, "-p", "0", input=b"no-key-here\n")
    got2 = kcat(broker, "-C", "-t", t2, "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%K|%k|%s|%h\n").stdout.decode()
    assert got2 == "-1||no-key-here|\n", got2


def test_auto_create_topic_on_produce(broker):
    """--auto-create-topics-enable true: producing to an unknown topic creates it."""
    t = helpers.unique_topic("auto")
    kcat(broker, "-P", "-t", t, "-p", "0", input=b"one\ntwo\n")
    got = kcat(broker, "-C", "-t", t, "-p", "0", "-o", "beginning", "-e", "-q").stdout
    assert got == b"one\ntwo\n"


def _diff(got: list[str], expected: list[str]) -> str:
    if len(got) != len(expected):
        head = f"line count differs: got {len(got)} expected {len(expected)}"
    else:
        head = "same line count"
    for i, (a, b) in enumerate(zip(got, expected)):
        if a != b:
            return f"{head}; first difference at line {i}: got {a!r} expected {b!r}"
    return head
