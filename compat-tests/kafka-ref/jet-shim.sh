#!/usr/bin/env bash
# Validation only: behaves like `jet` on the command line but runs Apache Kafka
# (KRaft, combined mode), so the process-controlling tests (restart, SIGTERM exit
# code) can be checked against a reference broker:
#   JET_BIN=compat-tests/kafka-ref/jet-shim.sh compat-tests/.venv/bin/pytest compat-tests/test_restart.py
# Needs the jars from start.sh (compat-tests/.cache/kafka/libs).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
LIBS="$(dirname "$HERE")/.cache/kafka/libs"
LISTEN="" ADV="" DATA="" NPART=1 AUTO=true SETS=""
[ "${1:-}" = "serve" ] && shift
while [ $# -gt 0 ]; do
  case "$1" in
    --listen) LISTEN="$2"; shift 2 ;;
    --advertised-listener) ADV="$2"; shift 2 ;;
    --data-dir) DATA="$2"; shift 2 ;;
    --num-partitions) NPART="$2"; shift 2 ;;
    --auto-create-topics-enable) AUTO="$2"; shift 2 ;;
    --set) SETS="$SETS$2"$'\n'; shift 2 ;;  # Kafka property names: appended to server.properties
    --admin-listen) shift 2 ;;  # Jet's admin HTTP server: Kafka has none
    *) echo "jet-shim: unknown argument $1" >&2; exit 2 ;;
  esac
done
PORT="${LISTEN##*:}"
# controller port: a free one, stable per data dir (restarts must reuse it)
mkdir -p "$DATA"
if [ ! -f "$DATA/controller.port" ]; then
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' > "$DATA/controller.port"
fi
CPORT="$(cat "$DATA/controller.port")"
cat > "$DATA/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://$LISTEN,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://$ADV
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA/logs
num.partitions=$NPART
auto.create.topics.enable=$AUTO
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
$SETS
PROPS
CP="$LIBS/*"
if [ ! -f "$DATA/logs/meta.properties" ]; then
  java -cp "$CP" kafka.tools.StorageTool format -t "$(java -cp "$CP" kafka.tools.StorageTool random-uuid)" -c "$DATA/server.properties" >&2
fi
# jet's contract is "SIGTERM -> graceful exit 0"; the JVM exits 143, so translate.
# (The harness SIGKILLs the whole process group, which takes java down too.)
java -Xmx1g -Dlog4j2.configurationFile="$HERE/log4j2.properties" -cp "$CP" kafka.Kafka "$DATA/server.properties" &
JPID=$!
trap 'kill -TERM $JPID 2>/dev/null' TERM INT
set +e
wait $JPID; rc=$?
if [ $rc -gt 128 ] && kill -0 $JPID 2>/dev/null; then wait $JPID; rc=$?; fi
set -e
if [ $rc -eq 143 ]; then exit 0; fi
exit $rc
