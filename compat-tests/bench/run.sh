#!/usr/bin/env bash
# Jet vs Apache Kafka benchmark: ./compat-tests/bench/run.sh [bench.py flags]
#   --quick   a few minutes: 1 KiB rows only, 1 repetition
#   --smoke   seconds: Jet only, tiny counts; proves the harness works (run by compat-tests/run.sh)
#   (no flag) the full matrix of issue 4; see bench.py --help
#
# Installs what is missing into compat-tests/.cache (nothing outside it but apt packages):
#   - a Python venv with bench/requirements.txt (confluent-kafka admin, matplotlib),
#   - rdkafka_performance, built from the librdkafka sources bundled in the rdkafka-sys crate
#     (fetched with `cargo fetch` from crates.io, version pinned below),
#   - the Java load programs (bench/java: kafka-clients + kafka-tools 4.1.1),
#   - the Apache Kafka broker jars (kafka-ref/pom.xml, kafka_2.13 4.1.1) unless --smoke,
#   - jet itself: cargo build --release (unless JET_BIN is set).
# Results go to compat-tests/.cache/bench/results/<UTC time>/ (results.md, chart.png, raw.json).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CT="$(dirname "$BENCH")"
ROOT="$(dirname "$CT")"
CACHE="$CT/.cache/bench"
mkdir -p "$CACHE"
RDKAFKA_SYS_VERSION="4.10.0+2.12.1"   # bundles librdkafka 2.12.1

step() { printf '==> [bench] %s\n' "$*" >&2; }
quiet() {   # run a command, showing its output only when it fails
  local log; log="$(mktemp)"
  "$@" >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; return 1; }
  rm -f "$log"
}
SMOKE=0
for arg in "$@"; do [ "$arg" = "--smoke" ] && SMOKE=1; done

need_apt() {   # need_apt COMMAND PACKAGE
  if ! command -v "$1" >/dev/null 2>&1; then
    step "installing $2"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  fi
}
need_apt javac openjdk-17-jdk-headless
need_apt mvn maven
need_apt make make
need_apt cc gcc

# ---------------------------------------------------------------- Python venv
VENV="$CACHE/venv"
REQ_HASH="$(sha256sum "$BENCH/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$REQ_HASH" ]; then
  step "creating $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q -r "$BENCH/requirements.txt"
  echo "$REQ_HASH" > "$VENV/.requirements.sha256"
fi

# ---------------------------------------------------------------- rdkafka_performance
RDPERF="$CACHE/bin/rdkafka_performance"
if [ ! -x "$RDPERF" ]; then
  step "building rdkafka_performance (librdkafka from rdkafka-sys $RDKAFKA_SYS_VERSION)"
  FETCH="$CACHE/rdkafka-fetch"
  mkdir -p "$FETCH/src" "$CACHE/bin"
  cat > "$FETCH/Cargo.toml" <<TOML
[package]
name = "rdkafka-source-fetch"
version = "0.0.0"
edition = "2021"
[dependencies]
rdkafka-sys = "=$RDKAFKA_SYS_VERSION"
[workspace]
TOML
  touch "$FETCH/src/lib.rs"
  cargo fetch -q --manifest-path "$FETCH/Cargo.toml"
  CRATE="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"rdkafka-sys-$RDKAFKA_SYS_VERSION.crate" | head -n1)"
  rm -rf "$FETCH/src-rdkafka" && mkdir -p "$FETCH/src-rdkafka"
  tar xzf "$CRATE" -C "$FETCH/src-rdkafka" --strip-components=1
  LIBRDKAFKA="$FETCH/src-rdkafka/librdkafka"
  # static, no TLS/SASL/HTTP: the benchmark talks PLAINTEXT on loopback; lz4/zstd/zlib/snappy stay on
  (cd "$LIBRDKAFKA" && ./configure --disable-ssl --disable-gssapi --disable-curl >"$FETCH/configure.log" 2>&1 \
     && make -j"$(nproc)" libs >"$FETCH/make.log" 2>&1 \
     && make -C examples rdkafka_performance >>"$FETCH/make.log" 2>&1) \
    || { tail -30 "$FETCH/configure.log" "$FETCH/make.log"; exit 1; }
  cp "$LIBRDKAFKA/examples/rdkafka_performance" "$RDPERF"
fi

# ---------------------------------------------------------------- Java programs and Kafka jars
step "building compat-tests/bench/java (kafka-clients, kafka-tools)"
quiet mvn -q -B -f "$BENCH/java/pom.xml" package -DskipTests
KAFKA_LIBS="$CT/.cache/kafka/libs"
if [ "$SMOKE" = 0 ] && [ -z "$(ls "$KAFKA_LIBS" 2>/dev/null)" ]; then
  step "fetching Apache Kafka jars into $KAFKA_LIBS"
  quiet mvn -q -B -f "$CT/kafka-ref/pom.xml" dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS"
fi

# ---------------------------------------------------------------- jet
if [ -z "${JET_BIN:-}" ]; then
  step "cargo build --release"
  (cd "$ROOT" && cargo build -q --release)
  JET_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/jet"
fi

exec "$VENV/bin/python" "$BENCH/bench.py" --jet-bin "$JET_BIN" --rdkafka-performance "$RDPERF" \
  --java-dir "$BENCH/java/target" --kafka-libs "$KAFKA_LIBS" --cache "$CACHE" "$@"
