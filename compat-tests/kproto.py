"""Minimal hand-rolled Kafka wire codec for readiness probes and hostile-bytes tests.

Only what the harness needs: request framing, ApiVersions v0, Metadata v1,
Produce v3 (classic) and v9 (flexible) with a v2 RecordBatch (CRC-32C), and
just enough response parsing to read error codes; plus a small schema-driven
codec (`Array`, `Api`, `Conn`) that kgroups.py uses for the group-coordinator APIs.
Deliberately independent of every client library under test.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

API_PRODUCE = 0
API_METADATA = 3
API_VERSIONS = 18

# ---------------------------------------------------------------- primitives


def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def string(s: str | None) -> bytes:
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(v: int) -> bytes:
    return uvarint((v << 1) ^ (v >> 63))


def compact_string(s: str | None) -> bytes:
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def compact_bytes(b: bytes | None) -> bytes:
    if b is None:
        return uvarint(0)
    return uvarint(len(b) + 1) + b


TAGS_NONE = uvarint(0)

# ---------------------------------------------------------------- CRC-32C

_CRC32C_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    tbl = _CRC32C_TABLE
    for b in data:
        crc = tbl[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---------------------------------------------------------------- records


def record(offset_delta: int, key: bytes | None, value: bytes | None, ts_delta: int = 0) -> bytes:
    body = (
        i8(0)  # attributes
        + varint(ts_delta)
        + varint(offset_delta)
        + (varint(-1) if key is None else varint(len(key)) + key)
        + (varint(-1) if value is None else varint(len(value)) + value)
        + varint(0)  # headers
    )
    return varint(len(body)) + body


def record_batch(
    values: list[bytes],
    base_ts: int | None = None,
    records_count: int | None = None,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
) -> bytes:
    """A magic-2 RecordBatch; records_count may LIE about len(values)."""
    if base_ts is None:
        base_ts = (time.time_ns() // 1_000_000 - 3_600_000) // 1000 * 1000
    recs = b"".join(record(i, None, v, i) for i, v in enumerate(values))
    n = len(values) if records_count is None else records_count
    after_crc = (
        i16(0)  # attributes: no compression, CreateTime
        + i32(len(values) - 1)  # lastOffsetDelta
        + i64(base_ts)
        + i64(base_ts + len(values) - 1)
        + i64(producer_id)
        + i16(producer_epoch)
        + i32(base_sequence)
        + i32(n)
        + recs
    )
    after_len = i32(0) + i8(2) + u32(crc32c(after_crc)) + after_crc  # leaderEpoch, magic, crc
    return i64(0) + i32(len(after_len)) + after_len


# ---------------------------------------------------------------- requests


def header_v1(api_key: int, api_version: int, correlation_id: int, client_id: str | None = "jet-compat") -> bytes:
    return i16(api_key) + i16(api_version) + i32(correlation_id) + string(client_id)


def header_v2(api_key: int, api_version: int, correlation_id: int, client_id: str | None = "jet-compat") -> bytes:
    return header_v1(api_key, api_version, correlation_id, client_id) + TAGS_NONE


def frame(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


def api_versions_v0(correlation_id: int) -> bytes:
    return frame(header_v1(API_VERSIONS, 0, correlation_id))


def metadata_v1(correlation_id: int, topics: list[str] | None) -> bytes:
    body = i32(-1) if topics is None else i32(len(topics)) + b"".join(string(t) for t in topics)
    return frame(header_v1(API_METADATA, 1, correlation_id) + body)


def metadata_v1_lying_count(correlation_id: int, declared: int = 0x7FFFFFFF) -> bytes:
    """Metadata v1 whose topics array declares `declared` entries but carries one."""
    body = i32(declared) + string("x")
    return frame(header_v1(API_METADATA, 1, correlation_id) + body)


def produce_v3(correlation_id: int, topic: str, partition: int, batch: bytes, acks: int = -1) -> bytes:
    body = (
        string(None)  # transactional_id
        + i16(acks)
        + i32(10_000)
        + i32(1)
        + string(topic)
        + i32(1)
        + i32(partition)
        + i32(len(batch))
        + batch
    )
    return frame(header_v1(API_PRODUCE, 3, correlation_id) + body)


def produce_v9(
    correlation_id: int,
    topic: str,
    partition: int,
    batch: bytes,
    acks: int = -1,
    topics_count_raw: bytes | None = None,
) -> bytes:
    """Flexible Produce v9; topics_count_raw replaces the compact-array length varint."""
    topics_len = uvarint(2) if topics_count_raw is None else topics_count_raw
    body = (
        compact_string(None)
        + i16(acks)
        + i32(10_000)
        + topics_len
        + compact_string(topic)
        + uvarint(2)
        + i32(partition)
        + compact_bytes(batch)
        + TAGS_NONE  # partition tags
        + TAGS_NONE  # topic tags
        + TAGS_NONE  # request tags
    )
    return frame(header_v2(API_PRODUCE, 9, correlation_id) + body)


# ---------------------------------------------------------------- responses


class Reader:
    def __init__(self, b: bytes):
        self.b = b
        self.p = 0

    def take(self, n: int) -> bytes:
        if self.p + n > len(self.b):
            raise ValueError(f"short response: need {n} at {self.p}, have {len(self.b)}")
        out = self.b[self.p : self.p + n]
        self.p += n
        return out

    def i8(self) -> int:
        return struct.unpack(">b", self.take(1))[0]

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def i64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self) -> int:
        shift = 0
        out = 0
        while True:
            b = self.take(1)[0]
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7

    def string(self) -> str | None:
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def compact_string(self) -> str | None:
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> bytes:
    (n,) = struct.unpack(">i", recv_exact(sock, 4))
    if n < 4 or n > 64 * 1024 * 1024:
        raise ValueError(f"bad response frame length {n}")
    return recv_exact(sock, n)


def parse_api_versions_v0(payload: bytes) -> tuple[int, int, dict[int, tuple[int, int]]]:
    r = Reader(payload)
    corr = r.i32()
    err = r.i16()
    out = {}
    for _ in range(r.i32()):
        k, lo, hi = r.i16(), r.i16(), r.i16()
        out[k] = (lo, hi)
    return corr, err, out


def parse_metadata_v1(payload: bytes) -> dict:
    r = Reader(payload)
    corr = r.i32()
    brokers = []
    for _ in range(r.i32()):
        node, host, port, rack = r.i32(), r.string(), r.i32(), r.string()
        brokers.append((node, host, port, rack))
    controller = r.i32()
    topics = []
    for _ in range(r.i32()):
        err, name, internal = r.i16(), r.string(), r.i8()
        parts = []
        for _ in range(r.i32()):
            perr, pidx, leader = r.i16(), r.i32(), r.i32()
            replicas = [r.i32() for _ in range(r.i32())]
            isr = [r.i32() for _ in range(r.i32())]
            parts.append((perr, pidx, leader, replicas, isr))
        topics.append((err, name, internal, parts))
    return {"correlation_id": corr, "brokers": brokers, "controller": controller, "topics": topics}


def parse_produce_v3(payload: bytes) -> tuple[int, list[tuple[str, int, int, int]]]:
    """-> (correlation_id, [(topic, partition, error_code, base_offset)])"""
    r = Reader(payload)
    corr = r.i32()
    out = []
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            pidx, err, base = r.i32(), r.i16(), r.i64()
            r.i64()  # log_append_time
            out.append((name, pidx, err, base))
    return corr, out


def parse_produce_v9(payload: bytes) -> tuple[int, list[tuple[str, int, int, int]]]:
    r = Reader(payload)
    corr = r.i32()
    r.skip_tags()  # response header v1
    out = []
    for _ in range(r.uvarint() - 1):
        name = r.compact_string()
        for _ in range(r.uvarint() - 1):
            pidx, err, base = r.i32(), r.i16(), r.i64()
            r.i64()  # log_append_time
            r.i64()  # log_start_offset
            for _ in range(r.uvarint() - 1):  # record_errors
                r.i32()
                r.compact_string()
                r.skip_tags()
            r.compact_string()  # error_message
            r.skip_tags()
            out.append((name, pidx, err, base))
        r.skip_tags()
    return corr, out


# ---------------------------------------------------------------- probes


def probe(host: str, port: int, timeout: float = 2.0) -> tuple[dict[int, tuple[int, int]], dict]:
    """ApiVersions v0 then Metadata v1 (all topics) on one connection."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(api_versions_v0(1))
        corr, err, versions = parse_api_versions_v0(recv_frame(s))
        if corr != 1 or err != 0:
            raise RuntimeError(f"ApiVersions: correlation {corr} error {err}")
        s.sendall(metadata_v1(2, None))
        md = parse_metadata_v1(recv_frame(s))
        if md["correlation_id"] != 2:
            raise RuntimeError(f"Metadata: correlation {md['correlation_id']}")
        return versions, md


def wait_ready(host: str, port: int, deadline_s: float, alive=lambda: True, interval: float = 0.05) -> tuple[dict, dict]:
    """Poll until ApiVersions is answered and Metadata lists a broker at host:port."""
    end = time.monotonic() + deadline_s
    last: Exception | None = None
    while time.monotonic() < end:
        if not alive():
            raise RuntimeError(f"broker process exited while waiting for readiness (last probe error: {last!r})")
        try:
            versions, md = probe(host, port)
            if any(h == host and p == port for _, h, p, _ in md["brokers"]):
                return versions, md
            last = RuntimeError(f"metadata does not list {host}:{port}: {md['brokers']}")
        except (OSError, ValueError, RuntimeError) as e:  # not up yet
            last = e
        # poll interval, not a fixed wait: we re-check the condition until the deadline
        time.sleep(interval)
    raise TimeoutError(f"broker at {host}:{port} not ready within {deadline_s}s: {last!r}")


# ---------------------------------------------------------------- schema-driven messages
#
# A schema is a list of (field, type) pairs. A type is a primitive name ("int8", "int16",
# "int32", "int64", "bool", "string", "nullable_string", "bytes", "nullable_bytes"),
# Array(element) where element is a type or a nested schema, or a nested schema itself.
# Flexible versions use compact strings/arrays/bytes and end every struct with an (empty)
# tagged-field section; requests/responses are plain dicts keyed by field name.


@dataclass(frozen=True)
class Array:
    element: object
    nullable: bool = False


def _len_prefix(n: int | None, flexible: bool, classic) -> bytes:
    if flexible:
        return uvarint(0 if n is None else n + 1)
    return classic(-1 if n is None else n)


def encode(schema: list, values: dict, flexible: bool) -> bytes:
    out = b"".join(_encode_value(t, values[name], flexible) for name, t in schema)
    return out + (TAGS_NONE if flexible else b"")


def _encode_value(t, v, flexible: bool) -> bytes:
    if isinstance(t, list):
        return encode(t, v, flexible)
    if isinstance(t, Array):
        if v is None:
            assert t.nullable, "null for a non-nullable array"
            return _len_prefix(None, flexible, i32)
        return _len_prefix(len(v), flexible, i32) + b"".join(_encode_value(t.element, e, flexible) for e in v)
    if t in ("int8", "int16", "int32", "int64"):
        return {"int8": i8, "int16": i16, "int32": i32, "int64": i64}[t](v)
    if t == "bool":
        return i8(1 if v else 0)
    if t in ("string", "nullable_string"):
        assert v is not None or t == "nullable_string", "null for a non-nullable string"
        b = None if v is None else v.encode()
        return _len_prefix(None if b is None else len(b), flexible, i16) + (b or b"")
    if t in ("bytes", "nullable_bytes"):
        assert v is not None or t == "nullable_bytes", "null for non-nullable bytes"
        return _len_prefix(None if v is None else len(v), flexible, i32) + (v or b"")
    raise ValueError(f"unknown type {t!r}")


def decode(schema: list, r: Reader, flexible: bool) -> dict:
    out = {name: _decode_value(t, r, flexible) for name, t in schema}
    if flexible:
        r.skip_tags()
    return out


def _decode_len(r: Reader, flexible: bool, classic) -> int | None:
    n = r.uvarint() - 1 if flexible else classic()
    return None if n < 0 else n


def _decode_value(t, r: Reader, flexible: bool):
    if isinstance(t, list):
        return decode(t, r, flexible)
    if isinstance(t, Array):
        n = _decode_len(r, flexible, r.i32)
        return None if n is None else [_decode_value(t.element, r, flexible) for _ in range(n)]
    if t in ("int8", "int16", "int32", "int64"):
        return {"int8": r.i8, "int16": r.i16, "int32": r.i32, "int64": r.i64}[t]()
    if t == "bool":
        return r.i8() != 0
    if t in ("string", "nullable_string"):
        n = _decode_len(r, flexible, r.i16)
        return None if n is None else r.take(n).decode()
    if t in ("bytes", "nullable_bytes"):
        n = _decode_len(r, flexible, r.i32)
        return None if n is None else r.take(n)
    raise ValueError(f"unknown type {t!r}")


@dataclass(frozen=True)
class Api:
    """One API at one version: request and response schemas (without headers)."""

    key: int
    version: int
    flexible: bool
    request: list
    response: list


class Conn:
    """One connection; call() = send() + recv() of the matching response."""

    def __init__(self, host: str, port: int, timeout: float = 30.0, client_id: str = "jet-compat"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.client_id = client_id
        self.next_corr = 1

    def send(self, api: Api, **fields) -> int:
        corr = self.next_corr
        self.next_corr += 1
        header = (header_v2 if api.flexible else header_v1)(api.key, api.version, corr, self.client_id)
        self.sock.sendall(frame(header + encode(api.request, fields, api.flexible)))
        return corr

    def recv(self, api: Api, corr: int) -> dict:
        r = Reader(recv_frame(self.sock))
        got = r.i32()
        if got != corr:
            raise RuntimeError(f"correlation id {got}, expected {corr}")
        if api.flexible:
            r.skip_tags()  # response header v1
        out = decode(api.response, r, api.flexible)
        if r.p != len(r.b):
            raise ValueError(f"{len(r.b) - r.p} trailing bytes in the response to api {api.key} v{api.version}")
        return out

    def call(self, api: Api, **fields) -> dict:
        return self.recv(api, self.send(api, **fields))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
