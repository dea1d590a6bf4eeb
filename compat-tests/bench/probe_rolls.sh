#!/usr/bin/env bash
# acks=all ack latency of one or more jet binaries, with and without frequent segment rolls:
# the LatencyProbe of bench/java (open loop, 1 KiB records, one partition) against each
# binary in turn, RUNS times per setting, on fresh data dirs under $DATA (not tmpfs: the
# fsyncs are what is measured).
#
#   PROBE_CP=<class path with kafka-clients and jet.bench.LatencyProbe> \
#     compat-tests/bench/probe_rolls.sh before=/path/to/jet after=/path/to/jet
#
# Knobs (environment): RATE (records/s, 5000), SECONDS (15), WARMUP (2), RUNS (3),
# SEGMENT_BYTES (the rolling setting, 4194304), DATA (a directory on the disk to measure).
# Prints one JSON line per run: binary, segment.bytes, then the probe's p50/p99/p99.9/max.
set -euo pipefail
RATE="${RATE:-5000}"; SECONDS_="${SECONDS:-15}"; WARMUP="${WARMUP:-2}"; RUNS="${RUNS:-3}"
SEGMENT_BYTES="${SEGMENT_BYTES:-4194304}"
DATA="${DATA:-$(dirname "$0")/../.cache/probe-rolls}"
mkdir -p "$DATA"
: "${PROBE_CP:?set PROBE_CP to the LatencyProbe class path}"

run_one() {   # run_one NAME BINARY SEGMENT_BYTES
  local name="$1" bin="$2" seg="$3" dir log port pid
  dir="$(mktemp -d "$DATA/run.XXXXXX")"
  log="$dir/jet.log"
  RUST_LOG=info "$bin" --listen 127.0.0.1:0 --data-dir "$dir/data" --set "log.segment.bytes=$seg" 2>"$log" &
  pid=$!
  for _ in $(seq 600); do
    port="$(grep -o 'jet is ready.*listen=127.0.0.1:[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "jet did not start: $(tail -5 "$log")" >&2; kill "$pid"; exit 1; }
  local out
  out="$(java -cp "$PROBE_CP" jet.bench.LatencyProbe --bootstrap "127.0.0.1:$port" --topic probe \
          --size 1024 --rate "$RATE" --seconds "$SECONDS_" --warmup-seconds "$WARMUP" --acks all \
          --compression none 2>/dev/null | tail -n1)"
  kill "$pid"; wait "$pid" || true
  rm -rf "$dir"
  echo "{\"binary\": \"$name\", \"segment_bytes\": $seg, \"probe\": $out}"
}

specs=("$@")
for run in $(seq "$RUNS"); do
  for seg in 1073741824 "$SEGMENT_BYTES"; do
    # The binaries take turns going first.
    order=("${specs[@]}")
    if [ $((run % 2)) = 0 ]; then order=(); for ((i=${#specs[@]}-1; i>=0; i--)); do order+=("${specs[i]}"); done; fi
    for spec in "${order[@]}"; do
      sync
      run_one "${spec%%=*}" "${spec#*=}" "$seg"
    done
  done
done
