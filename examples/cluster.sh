#!/usr/bin/env bash
# A local 3-broker Jet cluster on loopback, one command per step:
#
#   examples/cluster.sh up          start brokers 1, 2 and 3; return once every broker's
#                                   Metadata lists all three and a controller among them
#                                   and each reports ready (/readyz: --bootstrap-expect met)
#   examples/cluster.sh status      pid, state and ports of each broker (exit 0 when all run)
#   examples/cluster.sh kill ID     SIGKILL broker ID (1, 2 or 3)
#   examples/cluster.sh start ID    start broker ID again on its data; return once every
#                                   running broker lists the running brokers again.
#                                   ID 4..9 starts a new broker that joins the running
#                                   cluster (it takes replicas of new topics, and of
#                                   existing ones moved to it with a partition reassignment)
#   examples/cluster.sh logs ID [-f]  the last lines of broker ID's log (-f: follow it)
#   examples/cluster.sh down        SIGTERM every broker and wait for it to exit
#
# Environment:
#   JET_BIN=path          broker binary (default: `cargo build --release`, then
#                         ${CARGO_TARGET_DIR:-target}/release/jet of this repository)
#   JET_CLUSTER_DIR=dir   where data, logs and pid files go (default ./cluster):
#                         DIR/broker-N/{data/,jet.log,jet.pid}, DIR/cluster.id
#   JET_BASE_PORT=port    first Kafka port (default 19092); broker N (1..9) uses
#                           Kafka  BASE+N-1      (19092, 19093, 19094)
#                           admin  BASE+10+N-1   (19102, 19103, 19104)  HTTP /readyz, /v1/cluster
#                           gossip BASE+20+N-1   (19112, 19113, 19114)  TCP and UDP
#                           raft   BASE+30+N-1   (19122, 19123, 19124)
#   JET_RACKS=a,b,c[,..]  racks of brokers 1, 2, 3 (and of 4.. when named; --broker-rack);
#                         none when unset
#   JET_CLUSTER_ID=id     cluster id every broker reports (default: generated at the first
#                         `up` and kept in DIR/cluster.id)
#   JET_CLUSTER_TIMEOUT=s how long `up` and `start` wait for the cluster (default 60)
#   JET_STOP_TIMEOUT=s    how long `down` waits for each broker to exit (default 30)
# Other JET_* variables (JET_GOSSIP_KEY, RUST_LOG, ...) reach the brokers as usual.
#
# Everything listens on 127.0.0.1 only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROG="$(basename "$0")"
# The three brokers `up` starts; `start 4`..`start 9` add more (EXTRA_IDS, see below).
IDS="1 2 3"
HOST=127.0.0.1

die() {
  printf '%s: %s\n' "$PROG" "$*" >&2
  exit 1
}

usage() {
  cat >&2 <<EOF
usage: $PROG up | down | status | kill ID | start ID | logs ID [-f]
  (ID is 1..9: 1, 2 and 3 are the cluster \`up\` starts, 4..9 brokers that join it;
   see the top of $0 for the environment variables)
EOF
  exit 2
}

is_uint() {
  case "$1" in
    '' | *[!0-9]*) return 1 ;;
    *) return 0 ;;
  esac
}

BASE="${JET_BASE_PORT:-19092}"
is_uint "$BASE" || die "JET_BASE_PORT must be a port number, not '$BASE'"
if [ "$BASE" -lt 1 ] || [ "$BASE" -gt $((65535 - 38)) ]; then
  die "JET_BASE_PORT=$BASE: ports BASE..BASE+38 must all be valid"
fi
TIMEOUT="${JET_CLUSTER_TIMEOUT:-60}"
is_uint "$TIMEOUT" || die "JET_CLUSTER_TIMEOUT must be whole seconds, not '$TIMEOUT'"
STOP_TIMEOUT="${JET_STOP_TIMEOUT:-30}"
is_uint "$STOP_TIMEOUT" || die "JET_STOP_TIMEOUT must be whole seconds, not '$STOP_TIMEOUT'"

# Absolute, and canonical once it exists (the brokers' command lines name it, and
# `running` recognises a broker by its data directory there).
CLUSTER_DIR="${JET_CLUSTER_DIR:-./cluster}"
canonical_cluster_dir() {
  if [ -d "$CLUSTER_DIR" ]; then
    CLUSTER_DIR="$(cd "$CLUSTER_DIR" && pwd -P)"
  else
    case "$CLUSTER_DIR" in
      /*) ;;
      *) CLUSTER_DIR="$PWD/$CLUSTER_DIR" ;;
    esac
  fi
}
canonical_cluster_dir

RACKS=()
if [ -n "${JET_RACKS:-}" ]; then
  IFS=, read -r -a RACKS <<<"$JET_RACKS"
  if [ "${#RACKS[@]}" -lt 3 ] || [ "${#RACKS[@]}" -gt 9 ]; then
    die "JET_RACKS must name the racks of brokers 1, 2, 3 (and up to 9), as in JET_RACKS=a,b,c (got '$JET_RACKS')"
  fi
  for rack in "${RACKS[@]}"; do
    [ -n "$rack" ] || die "JET_RACKS names an empty rack (got '$JET_RACKS')"
  done
fi

# --------------------------------------------------------------------- per broker
check_id() {
  case "${1:-}" in
    [1-9]) ;;
    *) die "broker ID must be 1 to 9, not '${1:-}'" ;;
  esac
}
kafka_port() { echo $((BASE + $1 - 1)); }
admin_port() { echo $((BASE + 10 + $1 - 1)); }
gossip_port() { echo $((BASE + 20 + $1 - 1)); }
raft_port() { echo $((BASE + 30 + $1 - 1)); }
broker_dir() { echo "$CLUSTER_DIR/broker-$1"; }
log_file() { echo "$(broker_dir "$1")/jet.log"; }
pid_file() { echo "$(broker_dir "$1")/jet.pid"; }
rack_of() {
  echo "${RACKS[$(($1 - 1))]:-}"
}

# Brokers 1 2 3 and every broker 4..9 started here before (it has a directory).
all_ids() {
  local id out="$IDS"
  for id in 4 5 6 7 8 9; do
    if [ -d "$(broker_dir "$id")" ]; then out="$out $id"; fi
  done
  echo "$out"
}

# The pid in broker ID's pid file, if any.
pid_of() {
  local f
  f="$(pid_file "$1")"
  [ -f "$f" ] || return 1
  local pid
  pid="$(cat "$f")"
  is_uint "$pid" || return 1
  echo "$pid"
}

# Whether broker ID runs: its pid is alive and, where /proc tells, is a process started
# on this broker's data directory (not a later process that reused the pid, nor a zombie).
running() {
  local pid
  pid="$(pid_of "$1")" || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -d /proc/self ]; then
    local cmdline
    cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
    case "$cmdline" in
      *"$(broker_dir "$1")/data"*) return 0 ;;
      *) return 1 ;;
    esac
  fi
}

running_ids() {
  local id out=""
  for id in $(all_ids); do
    if running "$id"; then out="$out $id"; fi
  done
  echo "${out# }"
}

JET=""
resolve_jet() {
  if [ -n "${JET_BIN:-}" ]; then
    JET="$JET_BIN"
  else
    command -v cargo >/dev/null 2>&1 || die "JET_BIN is not set and cargo is not installed"
    printf 'building jet: cargo build --release (set JET_BIN to use a built binary)\n' >&2
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
    local target="${CARGO_TARGET_DIR:-$ROOT/target}"
    case "$target" in
      /*) ;;
      *) target="$ROOT/$target" ;;
    esac
    JET="$target/release/jet"
  fi
  [ -x "$JET" ] || die "jet binary '$JET' is missing or not executable"
}

cluster_id() {
  if [ -n "${JET_CLUSTER_ID:-}" ]; then
    echo "$JET_CLUSTER_ID"
    return
  fi
  local f="$CLUSTER_DIR/cluster.id"
  if [ ! -s "$f" ]; then
    # As Kafka makes them: 16 random bytes in URL-safe base64 without padding, never
    # starting with '-' (it would read as an option).
    local id="-"
    while [ "${id#-}" != "$id" ]; do
      id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    done
    echo "$id" >"$f.tmp"
    mv "$f.tmp" "$f"
  fi
  cat "$f"
}

seeds() {
  local id out=""
  for id in $IDS; do out="$out,$HOST:$(gossip_port "$id")"; done
  echo "${out#,}"
}

bootstrap_servers() {
  local id out=""
  for id in $IDS; do out="$out,$HOST:$(kafka_port "$id")"; done
  echo "${out#,}"
}

# Starts broker ID in the background on its data directory; its output goes to its log.
launch() {
  local id="$1" dir rack
  dir="$(broker_dir "$id")"
  rack="$(rack_of "$id")"
  mkdir -p "$dir/data"
  local args=(
    --node-id "$id"
    --cluster-id="$(cluster_id)"
    --data-dir "$dir/data"
    --listen "$HOST:$(kafka_port "$id")"
    --advertised-listener "$HOST:$(kafka_port "$id")"
    --admin-listen "$HOST:$(admin_port "$id")"
    --gossip-listen "$HOST:$(gossip_port "$id")"
    --seeds "$(seeds)"
    --raft-listen "$HOST:$(raft_port "$id")"
    --bootstrap-expect 3
  )
  if [ -n "$rack" ]; then args+=(--broker-rack "$rack"); fi
  printf '\n===== %s: %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$JET" "${args[*]}" >>"$(log_file "$id")"
  # In a session of its own where setsid exists (else immune to hangups), so the broker
  # outlives this script and signals sent to the caller's process group or terminal. The
  # pid file is written by the process that then becomes jet, whether setsid forked or not.
  local detach=nohup pidf
  if command -v setsid >/dev/null 2>&1; then detach=setsid; fi
  pidf="$(pid_file "$id")"
  rm -f "$pidf"
  # shellcheck disable=SC2016 # $$ and $1 belong to the inner sh
  "$detach" sh -c 'echo "$$" >"$1.tmp" && mv "$1.tmp" "$1" && shift && exec "$@"' sh "$pidf" "$JET" "${args[@]}" \
    </dev/null >>"$(log_file "$id")" 2>&1 &
  local deadline=$((SECONDS + 10))
  until [ -s "$pidf" ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "broker $id did not start (no pid file after 10 s); see $(log_file "$id")"
    sleep 0.05
  done
  printf 'broker %s: started, pid %s, kafka %s:%s, log %s\n' "$id" "$(cat "$pidf")" "$HOST" "$(kafka_port "$id")" "$(log_file "$id")"
}

# What broker ID's Metadata says: "IDS|CONTROLLER" (IDS sorted, space-separated), or
# nothing when it does not answer.
metadata_view() {
  local info ids ctrl
  info="$("$JET" cluster info --brokers "$HOST:$(kafka_port "$1")" --timeout-ms 2000 --format json 2>/dev/null)" || return 1
  ids="$(printf '%s\n' "$info" | sed -n 's/^ *"id": *\(-\{0,1\}[0-9][0-9]*\).*/\1/p' | sort -n | tr '\n' ' ')"
  ctrl="$(printf '%s\n' "$info" | sed -n 's/^ *"controller_id": *\(-\{0,1\}[0-9][0-9]*\).*/\1/p')"
  echo "${ids% }|$ctrl"
}

LAST_PROBLEM=""
# Whether every broker of CHECK lists exactly the brokers EXPECT (sorted ids) in its
# Metadata with a controller among them, and (READY=1) answers /readyz with 200.
# Fails at once (exit) when a broker of CHECK has died.
formed() {
  local check="$1" expect="$2" ready="$3" id view ids ctrl
  for id in $check; do
    if ! running "$id"; then
      printf '%s: broker %s is not running (it exited); last lines of %s:\n' "$PROG" "$id" "$(log_file "$id")" >&2
      tail -n 20 "$(log_file "$id")" >&2 || true
      printf '(the other brokers keep running: "%s down" stops them)\n' "$PROG" >&2
      exit 1
    fi
  done
  for id in $check; do
    if ! view="$(metadata_view "$id")"; then
      LAST_PROBLEM="broker $id does not answer Metadata on $HOST:$(kafka_port "$id") yet"
      return 1
    fi
    ids="${view%|*}" ctrl="${view#*|}"
    if [ "$ids" != "$expect" ]; then
      LAST_PROBLEM="broker $id lists brokers [$ids], waiting for [$expect]"
      return 1
    fi
    case " $expect " in
      *" $ctrl "*) ;;
      *)
        LAST_PROBLEM="broker $id reports controller '${ctrl}', not one of [$expect]"
        return 1
        ;;
    esac
    if [ "$ready" = 1 ] && ! "$JET" healthcheck --admin-listen "$HOST:$(admin_port "$id")" --timeout-ms 2000 >/dev/null 2>&1; then
      LAST_PROBLEM="broker $id is not ready: $("$JET" healthcheck --admin-listen "$HOST:$(admin_port "$id")" --timeout-ms 2000 2>&1 | tail -n 1)"
      return 1
    fi
  done
}

# Waits up to TIMEOUT seconds for `formed CHECK EXPECT READY`.
wait_formed() {
  local deadline=$((SECONDS + TIMEOUT))
  until formed "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      printf '%s: the cluster did not form within %s s: %s\n' "$PROG" "$TIMEOUT" "$LAST_PROBLEM" >&2
      local id
      for id in $1; do printf '  broker %s log: %s\n' "$id" "$(log_file "$id")" >&2; done
      printf '  (the brokers keep running: "%s logs ID", "%s down")\n' "$PROG" "$PROG" >&2
      exit 1
    fi
    sleep 0.2
  done
}

# The state letter of process PID (R, S, D, Z, ...) from /proc/PID/stat; fails once it is gone.
proc_state() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  # The command name (field 2) is in parentheses and may hold spaces: cut after the last ')'.
  stat="${stat##*) }"
  printf '%s' "${stat%% *}"
}

# Waits up to SECS seconds for broker ID's process PID to exit.
wait_exit() {
  local pid="$1" deadline=$((SECONDS + $2))
  local state
  while kill -0 "$pid" 2>/dev/null; do
    # A zombie (exited, not yet reaped by its parent: no init reaps it in some containers)
    # is gone for us. Not the empty cmdline: a multi-threaded process loses its cmdline
    # while its threads are still exiting, before it is a zombie.
    if [ -d /proc/self ]; then
      state="$(proc_state "$pid")" || return 0
      case "$state" in Z | X) return 0 ;; esac
    fi
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# --------------------------------------------------------------------- commands
cmd_up() {
  local up
  up="$(running_ids)"
  if [ "${up#"$IDS"}" != "$up" ]; then
    printf 'cluster already up (brokers %s); bootstrap servers %s\n' "$up" "$(bootstrap_servers)"
    return 0
  fi
  resolve_jet
  mkdir -p "$CLUSTER_DIR"
  canonical_cluster_dir
  local id
  for id in $IDS; do
    if running "$id"; then
      printf 'broker %s: already running, pid %s\n' "$id" "$(pid_of "$id")"
    else
      launch "$id"
    fi
  done
  printf 'waiting up to %s s for the brokers to see each other and a controller...\n' "$TIMEOUT"
  wait_formed "$IDS" "$(running_ids)" 1
  printf 'cluster up: brokers 1 2 3, controller %s; bootstrap servers %s\n' \
    "$(metadata_view 1 | cut -d'|' -f2)" "$(bootstrap_servers)"
  printf '  try: JET_BROKERS=%s %s cluster info\n' "$(bootstrap_servers)" "$JET"
}

cmd_start() {
  check_id "${1:-}"
  local id="$1"
  if running "$id"; then
    printf 'broker %s: already running, pid %s\n' "$id" "$(pid_of "$id")"
    return 0
  fi
  resolve_jet
  mkdir -p "$CLUSTER_DIR"
  canonical_cluster_dir
  launch "$id"
  local up
  up="$(running_ids)"
  printf 'waiting up to %s s for brokers [%s] to list each other...\n' "$TIMEOUT" "$up"
  wait_formed "$up" "$up" 0
  printf 'broker %s: rejoined the cluster; brokers [%s], controller %s\n' "$id" "$up" "$(metadata_view "$id" | cut -d'|' -f2)"
}

cmd_kill() {
  check_id "${1:-}"
  local id="$1" pid
  if ! running "$id"; then
    printf 'broker %s: not running\n' "$id"
    return 0
  fi
  pid="$(pid_of "$id")"
  kill -KILL "$pid"
  wait_exit "$pid" 10 || die "broker $id (pid $pid) still exists 10 s after SIGKILL"
  rm -f "$(pid_file "$id")"
  printf 'broker %s: killed (SIGKILL), was pid %s\n' "$id" "$pid"
}

cmd_down() {
  local id pid stopped="" failed=""
  for id in $(all_ids); do
    if running "$id"; then
      pid="$(pid_of "$id")"
      kill -TERM "$pid" 2>/dev/null || true
      stopped="$stopped $id:$pid"
    else
      rm -f "$(pid_file "$id")"
    fi
  done
  if [ -z "$stopped" ]; then
    printf 'cluster already down (no broker running)\n'
    return 0
  fi
  local entry
  for entry in $stopped; do
    id="${entry%%:*}" pid="${entry#*:}"
    if wait_exit "$pid" "$STOP_TIMEOUT"; then
      rm -f "$(pid_file "$id")"
      printf 'broker %s: stopped (pid %s)\n' "$id" "$pid"
    else
      printf '%s: broker %s (pid %s) did not exit within %s s of SIGTERM; see %s, or "%s kill %s"\n' \
        "$PROG" "$id" "$pid" "$STOP_TIMEOUT" "$(log_file "$id")" "$PROG" "$id" >&2
      failed="$failed $id"
    fi
  done
  [ -z "$failed" ] || exit 1
}

cmd_status() {
  local id state all=0
  printf '%-6s %-16s %-7s %-7s %-7s %-7s %-6s %s\n' BROKER STATE KAFKA ADMIN GOSSIP RAFT RACK LOG
  for id in $(all_ids); do
    if running "$id"; then
      state="running:$(pid_of "$id")"
    else
      state="stopped"
      all=1
    fi
    local rack
    rack="$(rack_of "$id")"
    printf '%-6s %-16s %-7s %-7s %-7s %-7s %-6s %s\n' "$id" "$state" "$(kafka_port "$id")" "$(admin_port "$id")" \
      "$(gossip_port "$id")" "$(raft_port "$id")" "${rack:--}" "$(log_file "$id")"
  done
  printf 'bootstrap servers: %s (all on %s)\n' "$(bootstrap_servers)" "$HOST"
  return "$all"
}

cmd_logs() {
  check_id "${1:-}"
  local f
  f="$(log_file "$1")"
  [ -f "$f" ] || die "broker $1 has no log yet ($f)"
  case "${2:-}" in
    -f) exec tail -n 50 -f "$f" ;;
    '') exec tail -n 50 "$f" ;;
    *) usage ;;
  esac
}

case "${1:-}" in
  up) [ $# -eq 1 ] || usage; cmd_up ;;
  down) [ $# -eq 1 ] || usage; cmd_down ;;
  status) [ $# -eq 1 ] || usage; cmd_status ;;
  kill) [ $# -eq 2 ] || usage; cmd_kill "$2" ;;
  start) [ $# -eq 2 ] || usage; cmd_start "$2" ;;
  logs)
    if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
    cmd_logs "$2" "${3:-}"
    ;;
  *) usage ;;
esac
