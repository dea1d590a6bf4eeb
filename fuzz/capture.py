#!/usr/bin/env python3
"""Capture real client requests into fuzz/corpus/ (the seeds of the request fuzz tests).

A logging TCP proxy sits in front of a `jet` broker, which advertises the proxy's address,
so every connection a client makes (bootstrap and broker) goes through it. Each complete
request frame a client sends is written, without its 4-byte size prefix (what
`jet::protocol::decode_request` takes), to

    fuzz/corpus/<client>-<ApiKeyNumber>v<version>-<sha256 prefix>.bin

Identical frames are written once; per client, API key and version at most
MAX_PER_KEY frames are kept, so the corpus stays small (a few hundred KiB).

Clients driven (each skipped with a note when missing): kcat (librdkafka 2.0, all four
codecs, a balanced-consumer group), confluent-kafka (librdkafka 2.x: idempotent producer
with every codec, a consumer group with commits, admin calls), kafka-python, and the Java
kafka-clients program of compat-tests/java (classic and KIP-848 groups, codecs, admin).

Refresh the corpus (after compat-tests/run.sh has set up the clients):

    cargo build --release
    compat-tests/.venv/bin/python fuzz/capture.py            # all clients
    compat-tests/.venv/bin/python fuzz/capture.py --clean    # drop the old corpus first

then run the fuzz tests (`cargo test --release --test fuzz_requests --test fuzz_batches`)
and commit fuzz/corpus/.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COMPAT = REPO / "compat-tests"
sys.path.insert(0, str(COMPAT))

import kproto  # noqa: E402

MAX_PER_KEY = 4
# Produce frames carry the record batches (one codec each): keep more of them.
MAX_PRODUCE = 16
MAX_FRAME = 256 << 10


class Recorder:
    def __init__(self, out: Path):
        self.out = out
        self.label = "none"
        self.seen: set[str] = {p.stem.rsplit("-", 1)[-1] for p in out.glob("*.bin")}
        self.per_key: Counter = Counter()
        for p in out.glob("*.bin"):
            self.per_key[p.stem.rsplit("-", 1)[0]] += 1
        self.written = 0
        self.lock = threading.Lock()

    def frame(self, body: bytes) -> None:
        if len(body) < 8 or len(body) > MAX_FRAME:
            return
        key = int.from_bytes(body[0:2], "big", signed=True)
        version = int.from_bytes(body[2:4], "big", signed=True)
        digest = hashlib.sha256(body).hexdigest()[:12]
        stem = f"{self.label}-{key}v{version}"
        with self.lock:
            if digest in self.seen or self.per_key[stem] >= (MAX_PRODUCE if key == 0 else MAX_PER_KEY):
                return
            self.seen.add(digest)
            self.per_key[stem] += 1
            (self.out / f"{stem}-{digest}.bin").write_bytes(body)
            self.written += 1


def pipe(src: socket.socket, dst: socket.socket, recorder: Recorder | None) -> None:
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if recorder is None:
                continue
            buf += data
            while len(buf) >= 4:
                size = int.from_bytes(buf[:4], "big", signed=True)
                if size < 0 or size > 100 << 20:
                    recorder = None  # not Kafka framing (TLS...): stop parsing this stream
                    break
                if len(buf) < 4 + size:
                    break
                recorder.frame(buf[4 : 4 + size])
                buf = buf[4 + size :]
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def proxy(listen: socket.socket, upstream: tuple[str, int], recorder: Recorder) -> None:
    while True:
        try:
            client, _ = listen.accept()
        except OSError:
            return
        try:
            server = socket.create_connection(upstream)
        except OSError:
            client.close()
            continue
        threading.Thread(target=pipe, args=(client, server, recorder), daemon=True).start()
        threading.Thread(target=pipe, args=(server, client, None), daemon=True).start()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(argv: list[str], timeout: float = 120, input: bytes | None = None) -> None:
    try:
        p = subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
        if p.returncode != 0:
            print(f"  ({' '.join(argv[:3])}... exited {p.returncode}: {p.stderr[-300:].decode(errors='replace')})")
    except subprocess.TimeoutExpired:
        print(f"  ({' '.join(argv[:3])}... timed out; frames so far kept)")


def kcat(bootstrap: str) -> None:
    k = shutil.which("kcat")
    if k is None:
        print("  kcat missing: skipped")
        return
    lines = b"".join(b"key%d:value %d\n" % (i, i) for i in range(50))
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        sh([k, "-P", "-b", bootstrap, "-t", "fz-kcat", "-K:", "-z", codec], input=lines)
    sh([k, "-C", "-b", bootstrap, "-t", "fz-kcat", "-o", "beginning", "-e", "-q"])
    sh([k, "-L", "-b", bootstrap])
    sh([k, "-b", bootstrap, "-G", "fz-kcat-group", "-e", "-q", "-X", "auto.offset.reset=earliest", "fz-kcat"], timeout=20)


def confluent(bootstrap: str) -> None:
    try:
        from confluent_kafka import Consumer, Producer
        from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
    except ImportError:
        print("  confluent-kafka missing: skipped")
        return
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("fz-ck", 3, 1), NewTopic("fz-ck-compact", 1, 1, config={"cleanup.policy": "compact"})])["fz-ck"].result(30)
    time.sleep(0.5)
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "enable.idempotence": True, "linger.ms": 5})
        for i in range(200):
            p.produce("fz-ck", key=b"k%d" % (i % 7), value=b"v" * (i % 50), headers=[("h", b"x")])
        p.flush(30)
    p = Producer({"bootstrap.servers": bootstrap})
    p.produce("fz-ck-compact", key=b"k", value=None)
    p.flush(30)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "fz-ck-group", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["fz-ck"])
    got, end = 0, time.time() + 20
    while got < 600 and time.time() < end:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
            if got % 100 == 0:
                c.commit(m, asynchronous=False)
    c.close()
    admin.describe_configs([ConfigResource("topic", "fz-ck")])[ConfigResource("topic", "fz-ck")].result(30)
    admin.create_partitions([NewPartitions("fz-ck", 4)])["fz-ck"].result(30)
    admin.list_consumer_groups().result(30)
    admin.describe_consumer_groups(["fz-ck-group"])["fz-ck-group"].result(30)
    admin.delete_topics(["fz-ck-compact"])["fz-ck-compact"].result(30)


def kafka_python(bootstrap: str) -> None:
    try:
        from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
        from kafka.admin import NewTopic
    except ImportError:
        print("  kafka-python missing: skipped")
        return
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("fz-kp", 2, 1)])
    for codec in [None, "gzip"]:
        p = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=5)
        for i in range(100):
            p.send("fz-kp", key=b"k%d" % i, value=b"value %d" % i)
        p.flush(30)
        p.close()
    c = KafkaConsumer("fz-kp", bootstrap_servers=bootstrap, group_id="fz-kp-group", auto_offset_reset="earliest", consumer_timeout_ms=5000)
    for i, _ in enumerate(c):
        if i % 50 == 0:
            c.commit()
    c.close()
    admin.list_groups()
    admin.describe_groups(["fz-kp-group"])
    admin.close()


def java(bootstrap: str) -> None:
    classes, lib = COMPAT / "java" / "target" / "classes", COMPAT / "java" / "target" / "lib"
    if not (classes / "jet" / "compat" / "Main.class").exists() or shutil.which("java") is None:
        print("  Java client not built (mvn -f compat-tests/java/pom.xml package): skipped")
        return
    cp = f"{classes}{os.pathsep}{lib}/*"
    for scenario in ["produce-consume", "codecs", "admin-topics", "describe-configs", "group-classic", "group-consumer-uniform"]:
        sh(["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", cp, "jet.compat.Main", bootstrap, scenario], timeout=180)


CLIENTS = {"kcat": kcat, "confluent": confluent, "kafkapython": kafka_python, "java": java}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jet", default=os.environ.get("JET_BIN", str(REPO / "target" / "release" / "jet")))
    ap.add_argument("--out", default=str(HERE / "corpus"))
    ap.add_argument("--clients", default=",".join(CLIENTS))
    ap.add_argument("--clean", action="store_true", help="remove the existing corpus first")
    args = ap.parse_args()
    out = Path(args.out)
    if args.clean and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(out)

    jet_port, proxy_port = free_port(), free_port()
    listen = socket.socket()
    listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listen.bind(("127.0.0.1", proxy_port))
    listen.listen(64)
    threading.Thread(target=proxy, args=(listen, ("127.0.0.1", jet_port), recorder), daemon=True).start()
    bootstrap = f"127.0.0.1:{proxy_port}"
    with tempfile.TemporaryDirectory() as data:
        argv = [args.jet, "--listen", f"127.0.0.1:{jet_port}", "--advertised-listener", bootstrap, "--data-dir", data,
                "--set", "group.initial.rebalance.delay.ms=0"]
        broker = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:  # ready: answers ApiVersions and Metadata (which names the proxy)
                try:
                    kproto.probe("127.0.0.1", jet_port)
                    break
                except OSError:
                    if time.monotonic() > deadline or broker.poll() is not None:
                        raise
                    time.sleep(0.05)
            for name in args.clients.split(","):
                print(f"{name}:")
                recorder.label = name
                before = recorder.written
                try:
                    CLIENTS[name](bootstrap)
                except Exception as e:  # noqa: BLE001 - keep what was captured, go on
                    print(f"  {name} failed part way: {e!r}")
                print(f"  {recorder.written - before} new frames")
        finally:
            broker.terminate()
            broker.wait(30)
            listen.close()
    files = list(out.glob("*.bin"))
    print(f"corpus: {len(files)} frames, {sum(f.stat().st_size for f in files)} bytes in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
