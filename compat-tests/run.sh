#!/usr/bin/env bash
# The one command that runs every Jet test: ./compat-tests/run.sh
#
#  1. installs what is missing (kcat and shellcheck from Debian, python3-venv, JDK/Maven,
#     Node.js/npm, and helm from the Go module proxy into compat-tests/.tools/bin),
#  2. creates compat-tests/.venv with the pinned Python clients + pytest,
#  3. builds the Java (kafka-clients) and Go (franz-go, sarama) client programs once,
#     and installs kafkajs (npm ci from js/package-lock.json) when missing or the lock changed,
#  4. cargo clippy (-D warnings), cargo test --release, cargo build --release,
#  5. a seconds-long smoke run of the benchmark harness (compat-tests/bench/run.sh --smoke),
#  6. pytest compat-tests/ against the freshly built target/release/jet.
#
# Environment:
#   JET_BIN=path        broker binary to test (default: $CARGO_TARGET_DIR or target, /release/jet)
#   JET_BOOTSTRAP=h:p   test an already running broker instead (process tests are skipped)
#   COMPAT_SKIP_CARGO=1 skip steps 4 (e.g. with JET_BOOTSTRAP against a reference Kafka)
#   PYTEST_ARGS="..."   extra pytest arguments (e.g. "-k kcat -x")
#   JET_SKIP_FUSE_TESTS=1 skip the FUSE power-loss tests (tests/powerloss.rs) where FUSE cannot be mounted
#   JET_SKIP_NETNS_TESTS=1 skip the network-partition test (tests/cluster_partition.rs) where network
#                       namespaces cannot be made (it needs root and iproute2's `ip`)
#   JET_SKIP_HELM_TESTS=1 skip the Helm chart tests (compat-tests/test_helm_chart.py) and helm's install
set -euo pipefail

CT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$CT")"
cd "$ROOT"

step() { printf '\n==> [compat] %s\n' "$*" >&2; }
CURRENT_STEP="start"
trap 'rc=$?; printf "\n!!! [compat] FAILED (exit %s) during: %s\n" "$rc" "$CURRENT_STEP" >&2; exit $rc' ERR

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# ---------------------------------------------------------------- 1. system packages
CURRENT_STEP="install kcat"
if ! command -v kcat >/dev/null 2>&1; then
  step "installing kcat (Debian's, librdkafka 2.0.2)"
  apt_install kcat
fi
echo "kcat: $(kcat -V 2>&1 | grep -o 'librdkafka [0-9.]*' | head -n1 || true)" >&2

CURRENT_STEP="install shellcheck"
if ! command -v shellcheck >/dev/null 2>&1; then
  step "installing shellcheck (Debian's, for examples/cluster.sh)"
  apt_install shellcheck
fi

CURRENT_STEP="install java/maven"
if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
  step "installing a JDK"
  apt_install openjdk-17-jdk-headless
fi
if ! command -v mvn >/dev/null 2>&1; then
  step "installing maven"
  apt_install maven
fi

CURRENT_STEP="install fuse3"
# tests/powerloss.rs mounts a FUSE file system: as root with mount(2) on /dev/fuse, otherwise
# through fusermount3 (package fuse3). Those tests fail (never skip) where FUSE cannot be
# mounted, unless JET_SKIP_FUSE_TESTS=1.
if [ "$(id -u)" -ne 0 ] && ! command -v fusermount3 >/dev/null 2>&1; then
  step "installing fuse3 (fusermount3, for the power-loss tests)"
  apt_install fuse3
fi
if [ "${COMPAT_SKIP_CARGO:-0}" != "1" ] && [ ! -c /dev/fuse ] && [ "${JET_SKIP_FUSE_TESTS:-0}" != "1" ]; then
  echo "/dev/fuse is missing: the power-loss tests (tests/powerloss.rs) need it; set JET_SKIP_FUSE_TESTS=1 to skip them" >&2
  exit 1
fi

CURRENT_STEP="install iproute2"
# tests/cluster_partition.rs runs each broker in a network namespace of its own (`ip netns`,
# as root); it fails (never skips) where they cannot be made, unless JET_SKIP_NETNS_TESTS=1.
if [ "${JET_SKIP_NETNS_TESTS:-0}" != "1" ] && ! command -v ip >/dev/null 2>&1; then
  step "installing iproute2 (ip netns, for the network-partition test)"
  apt_install iproute2
fi

CURRENT_STEP="check go"
if ! command -v go >/dev/null 2>&1; then
  echo "go is required (go.mod of compat-tests/go needs go >= 1.26); it is not in Debian 12's archive at that version" >&2
  exit 1
fi

CURRENT_STEP="install helm"
# compat-tests/test_helm_chart.py lints and renders charts/jet; it fails (never skips) without
# helm, unless JET_SKIP_HELM_TESTS=1. Built with go from the Go module proxy when missing.
HELM_VERSION="v4.3.2"
TOOLS_BIN="$CT/.tools/bin"
export PATH="$TOOLS_BIN:$PATH"
if [ "${JET_SKIP_HELM_TESTS:-0}" != "1" ] && ! command -v helm >/dev/null 2>&1; then
  step "installing helm $HELM_VERSION into $TOOLS_BIN (go install, a few minutes)"
  mkdir -p "$TOOLS_BIN"
  GOBIN="$TOOLS_BIN" GOFLAGS=-mod=mod go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
fi

CURRENT_STEP="install node/npm"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  step "installing Node.js + npm (Debian's)"
  apt_install nodejs npm
fi

# ---------------------------------------------------------------- 2. python venv
CURRENT_STEP="python venv"
VENV="$CT/.venv"
REQ_HASH="$(sha256sum "$CT/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$REQ_HASH" ]; then
  step "creating $VENV"
  rm -rf "$VENV"
  PY="${PYTHON:-python3}"
  if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    step "python3 -m venv failed; installing python3-venv"
    apt_install python3-venv
    PY=/usr/bin/python3
    "$PY" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$CT/requirements.txt"
  echo "$REQ_HASH" > "$VENV/.requirements.sha256"
fi
"$VENV/bin/python" -c 'import confluent_kafka, kafka, aiokafka, pytest, pytest_timeout, yaml; print("python clients: confluent-kafka", confluent_kafka.__version__, "(librdkafka", confluent_kafka.libversion()[0] + ")", "kafka-python", kafka.__version__, "aiokafka", aiokafka.__version__)' >&2

# ---------------------------------------------------------------- 3. Java + Go client programs
CURRENT_STEP="build Java client program (mvn)"
step "building compat-tests/java (kafka-clients)"
mvn -q -B -f "$CT/java/pom.xml" package -DskipTests

CURRENT_STEP="build Go client program"
step "building compat-tests/go (franz-go, sarama)"
(cd "$CT/go" && go mod download && go mod verify >/dev/null && go build -o "$CT/.cache/bin/jetcompat-go" .)

CURRENT_STEP="install kafkajs (npm ci)"
JS_LOCK_HASH="$(sha256sum "$CT/js/package-lock.json" | cut -d' ' -f1)"
JS_STAMP="$CT/js/node_modules/.package-lock.sha256"
if [ ! -d "$CT/js/node_modules/kafkajs" ] || [ "$(cat "$JS_STAMP" 2>/dev/null)" != "$JS_LOCK_HASH" ]; then
  step "npm ci --prefix compat-tests/js (kafkajs)"
  npm ci --prefix "$CT/js" --no-audit --no-fund
  echo "$JS_LOCK_HASH" > "$JS_STAMP"
fi
echo "js client: node $(node --version), kafkajs $(node -p 'require(process.argv[1]).version' "$CT/js/node_modules/kafkajs/package.json")" >&2

# ---------------------------------------------------------------- 4. cargo
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ "${COMPAT_SKIP_CARGO:-0}" != "1" ]; then
  CURRENT_STEP="cargo clippy"
  if ! cargo clippy --version >/dev/null 2>&1; then
    step "installing clippy"
    rustup component add clippy
  fi
  step "cargo clippy --all-targets (warnings are errors)"
  cargo clippy --release --all-targets -- -D warnings
  CURRENT_STEP="cargo test --release"
  step "cargo test --release"
  cargo test --release
  CURRENT_STEP="cargo build --release"
  step "cargo build --release --locked (the Dockerfile's build step)"
  cargo build --release --locked
fi
export JET_BIN="${JET_BIN:-$TARGET_DIR/release/jet}"

# ---------------------------------------------------------------- 5. benchmark smoke
# before pytest, so that pytest's summary stays the last line of the run
if [ -z "${JET_BOOTSTRAP:-}" ]; then
  CURRENT_STEP="benchmark smoke (compat-tests/bench/run.sh --smoke)"
  step "benchmark harness smoke run: seconds of load, Jet only, no timing asserted"
  "$CT/bench/run.sh" --smoke
fi

# ---------------------------------------------------------------- 6. pytest
CURRENT_STEP="pytest compat-tests/"
step "pytest compat-tests/ (JET_BIN=$JET_BIN${JET_BOOTSTRAP:+, JET_BOOTSTRAP=$JET_BOOTSTRAP})"
# shellcheck disable=SC2086
"$VENV/bin/python" -m pytest "$CT" ${PYTEST_ARGS:-}
step "all compat tests passed"
