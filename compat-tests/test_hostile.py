"""Hostile bytes over raw sockets.

For each case the broker must answer with an error or close that connection
(within a deadline); meanwhile a separate, already-open well-behaved
connection keeps working; at the end the process is alive and its RSS bounded.
"""

from __future__ import annotations

import random
import socket

import pytest

import helpers
import kproto as kp

RESPONSE_DEADLINE_S = 15.0
RSS_LIMIT_KB = 200 * 1024


# ------------------------------------------------------------------ outcome checks


def send_hostile(bootstrap: str, data: bytes, half_close: bool = False):
    """-> ("closed", None) or ("response", payload). Fails if the broker does neither."""
    host, port = helpers.split_bootstrap(bootstrap)
    s = socket.create_connection((host, port), timeout=5)
    try:
        s.settimeout(RESPONSE_DEADLINE_S)
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return "closed", None
        try:
            head = s.recv(4)
            if not head:
                return "closed", None
            while len(head) < 4:
                more = s.recv(4 - len(head))
                if not more:
                    return "closed", None
                head += more
            n = int.from_bytes(head, "big", signed=True)
            assert 4 <= n <= 16 * 1024 * 1024, f"broker sent a bad response frame length {n}"
            return "response", kp.recv_exact(s, n)
        except ConnectionResetError:
            return "closed", None
        except ConnectionError:  # closed in the middle of a response frame
            return "closed", None
        except socket.timeout:
            pytest.fail(f"broker neither answered nor closed the connection within {RESPONSE_DEADLINE_S}s")
    finally:
        s.close()


def generic_error_response(corr: int):
    """Accept a response that echoes `corr` and carries a non-zero int16 error code right after it
    (the ApiVersions-style error answer); anything else is wrong."""

    def check(payload: bytes):
        r = kp.Reader(payload)
        got = r.i32()
        assert got == corr, f"response correlation id {got} != {corr}"
        err = r.i16()
        assert err != 0, "broker answered a malformed request with error code 0"

    return check


def metadata_v1_all_errors(corr: int):
    def check(payload: bytes):
        md = kp.parse_metadata_v1(payload)
        assert md["correlation_id"] == corr
        assert md["topics"], "Metadata answered a bogus topics array with no topics at all and no error"
        assert all(err != 0 for err, *_ in md["topics"]), f"Metadata answered the bogus request with success: {md['topics'][:3]}"

    return check


def produce_errors(corr: int, parser):
    def check(payload: bytes):
        got_corr, parts = parser(payload)
        assert got_corr == corr
        assert parts, "Produce response lists no partitions"
        assert all(err != 0 for _, _, err, _ in parts), f"Produce of an invalid batch succeeded: {parts}"

    return check


def fetch_v7_top_level_error(corr: int):
    def check(payload: bytes):
        r = kp.Reader(payload)
        assert r.i32() == corr
        r.i32()  # throttle_time_ms
        err = r.i16()
        assert err != 0, "Fetch v7 with a bogus topics array answered with top-level error 0"

    return check


def must_close(payload: bytes):
    pytest.fail(f"broker answered instead of closing the connection: {payload[:64]!r}")


def assert_outcome(outcome, check):
    kind, payload = outcome
    if kind == "response":
        check(payload)


# ------------------------------------------------------------------ well-behaved side channel


class GoodClient:
    """One connection opened before the hostile cases; must keep working throughout."""

    def __init__(self, bootstrap: str):
        host, port = helpers.split_bootstrap(bootstrap)
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.settimeout(10)
        self.corr = 1000

    def check(self, topic: str | None = None):
        try:
            self._check(topic)
        except BaseException:
            # don't let one failure desynchronise the stream for later tests: start over
            self.sock.close()
            self.sock = socket.create_connection((self.host, self.port), timeout=10)
            self.sock.settimeout(10)
            raise

    def _check(self, topic: str | None):
        self.corr += 1
        self.sock.sendall(kp.api_versions_v0(self.corr))
        corr, err, versions = kp.parse_api_versions_v0(kp.recv_frame(self.sock))
        assert (corr, err) == (self.corr, 0), "well-behaved connection: ApiVersions broke"
        assert kp.API_METADATA in versions and kp.API_PRODUCE in versions
        self.corr += 1
        self.sock.sendall(kp.metadata_v1(self.corr, [topic] if topic else None))
        md = kp.parse_metadata_v1(kp.recv_frame(self.sock))
        assert md["correlation_id"] == self.corr
        assert any(p == self.port for _, _, p, _ in md["brokers"]), md
        # and a brand-new connection is accepted as well
        kp.probe(self.host, self.port, timeout=10)


@pytest.fixture(scope="module")
def good(broker):
    g = GoodClient(broker.bootstrap)
    g.check()
    yield g
    g.sock.close()


@pytest.fixture(scope="module")
def hostile_topic(broker):
    name = helpers.unique_topic("hostile")
    helpers.create_topic(broker.bootstrap, name, 1)
    return name


# ------------------------------------------------------------------ control: the codec itself is right


def test_control_raw_produce_v3_and_v9_accepted(broker, hostile_topic, good):
    """Truthful batches through the same hand-written encoder succeed (offsets 0..2 and 3..4)."""
    host, port = helpers.split_bootstrap(broker.bootstrap)
    with socket.create_connection((host, port), timeout=10) as s:
        s.settimeout(10)
        s.sendall(kp.produce_v3(7, hostile_topic, 0, kp.record_batch([b"ok-0", b"ok-1", b"ok-2"])))
        corr, parts = kp.parse_produce_v3(kp.recv_frame(s))
        assert (corr, parts) == (7, [(hostile_topic, 0, 0, 0)])
        s.sendall(kp.produce_v9(8, hostile_topic, 0, kp.record_batch([b"ok-3", b"ok-4"])))
        corr, parts = kp.parse_produce_v9(kp.recv_frame(s))
        assert (corr, parts) == (8, [(hostile_topic, 0, 0, 3)])
    good.check(hostile_topic)


# ------------------------------------------------------------------ cases

RNG = random.Random(0xBAD)

CASES = {
    # framing
    "length_prefix_over_100MiB": (kp.i32(100 * 1024 * 1024 + 1) + b"\x00" * 64, must_close),
    "length_prefix_int32_max": (kp.i32(0x7FFFFFFF) + b"\x00\x12\x00\x00", must_close),
    "negative_length": (kp.i32(-1) + b"\x00" * 16, must_close),
    "negative_length_min": (kp.i32(-(2**31)) + b"\x00" * 16, must_close),
    "zero_length_frame": (kp.i32(0), generic_error_response(0)),
    "http_request_garbage": (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", must_close),
    "random_bytes_in_valid_frame": (kp.frame(b"\x7f\xfe" + bytes(RNG.getrandbits(8) for _ in range(300))), generic_error_response(-1)),
    # headers
    "truncated_header_5_bytes": (kp.frame(kp.i16(3) + kp.i16(1) + b"\x00"), generic_error_response(-1)),
    "truncated_header_client_id_overruns_frame": (
        kp.frame(kp.i16(18) + kp.i16(0) + kp.i32(41) + kp.i16(500) + b"abc"),
        generic_error_response(41),
    ),
    "unknown_api_key_32767": (kp.frame(kp.header_v1(32767, 0, 42)), generic_error_response(42)),
    "unknown_api_key_negative": (kp.frame(kp.header_v1(-5, 0, 43)), generic_error_response(43)),
    "unsupported_metadata_version_999": (kp.frame(kp.header_v1(kp.API_METADATA, 999, 44) + kp.i32(-1)), generic_error_response(44)),
    # bodies
    "metadata_v1_topics_array_claims_0x7fffffff": (kp.metadata_v1_lying_count(45, 0x7FFFFFFF), metadata_v1_all_errors(45)),
    "metadata_v1_topic_name_length_overruns_frame": (
        kp.frame(kp.header_v1(kp.API_METADATA, 1, 46) + kp.i32(1) + kp.i16(30000) + b"abc"),
        metadata_v1_all_errors(46),
    ),
    "fetch_v7_topics_array_claims_0x7fffffff": (
        kp.frame(
            kp.header_v1(1, 7, 47)
            + kp.i32(-1) + kp.i32(500) + kp.i32(1) + kp.i32(1 << 20) + kp.i8(0) + kp.i32(0) + kp.i32(-1)
            + kp.i32(0x7FFFFFFF)
        ),
        fetch_v7_top_level_error(47),
    ),
    "api_versions_v3_client_software_name_overruns_frame": (
        kp.frame(kp.header_v2(kp.API_VERSIONS, 3, 48) + kp.uvarint(0xFFFFFFF0) + b"jet"),
        generic_error_response(48),
    ),
    "request_header_v2_tagged_fields_count_0x7fffffff": (
        kp.frame(kp.header_v1(kp.API_METADATA, 9, 49) + kp.uvarint(0x7FFFFFFF) + b"\x00" * 8),
        generic_error_response(49),
    ),
}


def _produce_v9_u32max_topics(corr: int, topic: str) -> bytes:
    return kp.produce_v9(corr, topic, 0, kp.record_batch([b"never"]), topics_count_raw=kp.uvarint(0xFFFFFFFF))


def _produce_cases(topic: str):
    return {
        "produce_v9_topics_compact_array_u32_max": (_produce_v9_u32max_topics(50, topic), produce_errors(50, kp.parse_produce_v9)),
        "produce_v9_partitions_compact_array_u32_max": (
            _produce_v9_partitions_u32max(51, topic),
            produce_errors(51, kp.parse_produce_v9),
        ),
        "produce_v3_batch_records_count_too_large": (
            kp.produce_v3(52, topic, 0, kp.record_batch([b"lie-a", b"lie-b", b"lie-c"], records_count=1000)),
            produce_errors(52, kp.parse_produce_v3),
        ),
        "produce_v3_batch_records_count_too_small": (
            kp.produce_v3(53, topic, 0, kp.record_batch([b"lie-d", b"lie-e", b"lie-f"], records_count=1)),
            produce_errors(53, kp.parse_produce_v3),
        ),
        "produce_v3_batch_records_count_int32_max": (
            kp.produce_v3(54, topic, 0, kp.record_batch([b"lie-g"], records_count=0x7FFFFFFF)),
            produce_errors(54, kp.parse_produce_v3),
        ),
        "produce_v9_batch_records_count_negative": (
            kp.produce_v9(55, topic, 0, kp.record_batch([b"lie-h"], records_count=-1)),
            produce_errors(55, kp.parse_produce_v9),
        ),
        "produce_v3_batch_bad_crc": (
            kp.produce_v3(56, topic, 0, _corrupt_crc(kp.record_batch([b"lie-i"]))),
            produce_errors(56, kp.parse_produce_v3),
        ),
        "produce_v3_batch_length_overruns_records_field": (
            kp.produce_v3(57, topic, 0, _overlong_batch_length(kp.record_batch([b"lie-j"]))),
            produce_errors(57, kp.parse_produce_v3),
        ),
    }


def _produce_v9_partitions_u32max(corr: int, topic: str) -> bytes:
    body = (
        kp.compact_string(None)
        + kp.i16(-1)
        + kp.i32(10_000)
        + kp.uvarint(2)
        + kp.compact_string(topic)
        + kp.uvarint(0xFFFFFFFF)  # partitions array claims u32::MAX - 1 entries
        + kp.i32(0)
        + kp.compact_bytes(kp.record_batch([b"never"]))
        + kp.TAGS_NONE * 3
    )
    return kp.frame(kp.header_v2(kp.API_PRODUCE, 9, corr) + body)


def _corrupt_crc(batch: bytes) -> bytes:
    b = bytearray(batch)
    b[17] ^= 0xFF  # first CRC byte (offset 8+4+4+1)
    return bytes(b)


def _overlong_batch_length(batch: bytes) -> bytes:
    b = bytearray(batch)
    b[8:12] = kp.i32(len(batch) + 1_000_000)  # batchLength claims far more than the records field holds
    return bytes(b)


def test_tls_client_hello_gets_a_tls_alert(broker, good):
    """A TLS ClientHello on the plaintext listener is answered in TLS's own terms, a fatal
    handshake_failure alert record, and the connection is closed: the client's TLS stack
    reports a handshake failure instead of a reset (nothing else may be sent)."""
    rng = random.Random(0x715)
    hello = bytes.fromhex("16030100c4010000c00303") + bytes(rng.getrandbits(8) for _ in range(190))
    host, port = helpers.split_bootstrap(broker.bootstrap)
    with socket.create_connection((host, port), timeout=5) as s:
        s.settimeout(RESPONSE_DEADLINE_S)
        s.sendall(hello)
        got = b""
        try:
            while len(got) <= 64:
                more = s.recv(64)
                if not more:
                    break
                got += more
        except socket.timeout:
            pytest.fail(f"broker neither answered nor closed within {RESPONSE_DEADLINE_S}s; got {got!r}")
    assert got == bytes.fromhex("15030100020228"), f"expected exactly a fatal handshake_failure alert, got {got!r}"
    good.check()
    if not broker.external:
        assert broker.alive()


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_frame(broker, good, case):
    data, check = CASES[case]
    assert_outcome(send_hostile(broker.bootstrap, data), check)
    good.check()
    if not broker.external:
        assert broker.alive(), f"jet died on {case}"


PRODUCE_CASE_NAMES = list(_produce_cases("x"))


@pytest.mark.parametrize("case", PRODUCE_CASE_NAMES)
def test_hostile_produce(broker, good, hostile_topic, case):
    data, check = _produce_cases(hostile_topic)[case]
    assert_outcome(send_hostile(broker.bootstrap, data), check)
    good.check(hostile_topic)
    if not broker.external:
        assert broker.alive(), f"jet died on {case}"


def test_invalid_batches_appended_nothing(broker, hostile_topic, good):
    """Only the 5 control records are in the log: none of the lying batches were appended."""
    msgs = helpers.ck_consume_all(broker.bootstrap, hostile_topic, 0, 5)
    assert [(m.offset(), m.value()) for m in msgs] == [(i, f"ok-{i}".encode()) for i in range(5)]
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "jet-compat-unused"})
    try:
        assert c.get_watermark_offsets(TopicPartition(hostile_topic, 0), timeout=30, cached=False) == (0, 5)
    finally:
        c.close()


def test_many_connections_declaring_near_limit_frames(jet_process, good):
    """Declaring ~99 MiB frames on many connections and sending little must neither blow up memory
    nor stall other clients. (Needs our own process: it can wedge an external broker, e.g. Kafka.)"""
    broker = jet_process
    host, port = helpers.split_bootstrap(broker.bootstrap)
    socks = []
    try:
        for _ in range(16):
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(kp.i32(99 * 1024 * 1024) + kp.header_v1(kp.API_METADATA, 1, 1) + b"\x00" * 1024)
            socks.append(s)
        try:
            good.check()
        except (OSError, ValueError) as e:
            pytest.fail(
                "the well-behaved connection got no answer while 16 other connections each hold a partially "
                f"sent ~99 MiB frame (1 KiB actually sent): {e!r}"
            )
        if not broker.external:
            helpers.wait_until(lambda: broker.alive(), 2, "jet alive")
            rss = broker.rss_kb()
            assert rss < RSS_LIMIT_KB, f"jet RSS {rss} kB with 16 partial ~99MiB frames pending"
    finally:
        for s in socks:
            s.close()
    good.check()


def test_zz_broker_alive_and_rss_bounded(jet_process, good):
    good.check()
    assert jet_process.alive()
    rss = jet_process.rss_kb()
    assert rss < RSS_LIMIT_KB, f"jet RSS {rss} kB >= {RSS_LIMIT_KB} kB after the hostile cases"
    # a real client still works end to end
    from confluent_kafka import Producer

    t = helpers.unique_topic("after-hostile")
    helpers.create_topic(jet_process.bootstrap, t, 1)
    p = Producer({"bootstrap.servers": jet_process.bootstrap})
    p.produce(t, b"still-alive", partition=0)
    assert p.flush(30) == 0
    assert helpers.ck_consume_all(jet_process.bootstrap, t, 0, 1)[0].value() == b"still-alive"
