#!/usr/bin/env bash
# Start a throw-away single-node Apache Kafka (KRaft, combined broker+controller)
# on loopback, used ONLY to validate the compat tests themselves:
#   ./compat-tests/kafka-ref/start.sh [PORT]      (default 19092; prints the pid)
#   JET_BOOTSTRAP=127.0.0.1:19092 compat-tests/.venv/bin/pytest compat-tests
# Stop it with: kill "$(cat compat-tests/.cache/kafka/run/kafka.pid)"
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CT="$(dirname "$HERE")"
PORT="${1:-19092}"
CPORT=$((PORT + 1))
LIBS="$CT/.cache/kafka/libs"
RUN="$CT/.cache/kafka/run"
if [ ! -d "$LIBS" ] || [ -z "$(ls "$LIBS" 2>/dev/null)" ]; then
  (cd "$HERE" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$LIBS")
fi
rm -rf "$RUN"; mkdir -p "$RUN/data"
cat > "$RUN/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$RUN/data
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
CP="$LIBS/*"
java -cp "$CP" kafka.tools.StorageTool format -t "$(java -cp "$CP" kafka.tools.StorageTool random-uuid)" \
  -c "$RUN/server.properties" > "$RUN/format.log" 2>&1
nohup java -Xmx1g -Dlog4j2.configurationFile="$HERE/log4j2.properties" -cp "$CP" kafka.Kafka "$RUN/server.properties" \
  > "$RUN/kafka.log" 2>&1 &
echo $! > "$RUN/kafka.pid"
for _ in $(seq 1 120); do
  if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then echo "kafka up on 127.0.0.1:$PORT pid $(cat "$RUN/kafka.pid")"; exit 0; fi
  kill -0 "$(cat "$RUN/kafka.pid")" 2>/dev/null || { cat "$RUN/kafka.log"; exit 1; }
  sleep 0.5
done
echo "kafka did not come up"; tail -50 "$RUN/kafka.log"; exit 1
