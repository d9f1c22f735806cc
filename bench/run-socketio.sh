#!/usr/bin/env bash
# End-to-end Socket.IO benchmarks: duplex's Socket.IO server
# (crates/socketio/examples/bench_server.rs) against socketioxide
# (bench/peers, socketioxide-echo) and Node's socket.io
# (bench/node-socketio), all built or installed in this run and loaded by
# the same client (duplex-bench sio-*, Engine.IO/Socket.IO by hand over
# duplex's ws-proto).
#
# Each server runs single-threaded (Node: its one event loop), pinned to
# one core (SERVER_CORE, default 0); the client runs on the other
# (CLIENT_CORE, default 1). Everything listens on 127.0.0.1 only, on ports
# the kernel picks, and every process started here is stopped on exit.
#
# The matrix, cells interleaved across the servers so drifting background
# load hits all of them alike:
# - echo with acks: 100 and 1,000 sockets, one acked 20-byte event in
#   flight each; acked events per server CPU-second;
# - room broadcast to 1,000 and 10,000 sockets: as fast as acks and a
#   window of WINDOW broadcasts in flight allow, and at a fixed offered
#   load of BCAST_LOAD deliveries per second; deliveries per second and
#   emit-to-receipt latency;
# - memory per idle connected socket: RSS slope over 1k / 5k / 10k sockets,
#   each server started fresh.
#
# Usage:
#   bench/run-socketio.sh            # full matrix, ~6 minutes
#   QUICK=1 bench/run-socketio.sh    # smoke run: 100-socket echo, 1k
#                                    # broadcast, idle 1k/2k; 2 s cells
#
# Environment (all optional):
#   DURATION=5 WARMUP=1              measured / warm-up seconds per cell
#   ECHO_SOCKETS="100 1000"          echo socket counts
#   BCAST_SOCKETS="1000 10000"       broadcast room sizes
#   BCAST_LOAD="0 20000"             offered deliveries per second per
#                                    broadcast cell (0: as fast as possible);
#                                    the publisher's rate is this / sockets
#   WINDOW=2                         broadcasts in flight at most
#   IDLE_STEPS=1000,5000,10000       idle socket steps ("" skips idle)
#   SERVERS="duplex socketioxide socket.io"
#   REPEAT=1                         runs per echo / broadcast cell (the
#                                    tables show the median)
#   SERVER_CORE=0 CLIENT_CORE=1      cores to pin to
#   SKIP_BUILD=1                     use what is already built / installed
#
# Output: bench/results/socketio-<UTC timestamp>.jsonl (one JSON line per
# measurement), .md (the tables, also printed), and -logs/ (server logs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [[ ${QUICK:-0} == 1 ]]; then
    : "${DURATION:=2}" "${WARMUP:=0.5}" "${ECHO_SOCKETS:=100}" "${BCAST_SOCKETS:=1000}"
    : "${BCAST_LOAD:=0}" "${IDLE_STEPS:=1000,2000}"
fi
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
ECHO_SOCKETS=${ECHO_SOCKETS:-100 1000}
BCAST_SOCKETS=${BCAST_SOCKETS:-1000 10000}
BCAST_LOAD=${BCAST_LOAD:-0 20000}
WINDOW=${WINDOW:-2}
IDLE_STEPS=${IDLE_STEPS-1000,5000,10000}
SERVERS=${SERVERS:-duplex socketioxide socket.io}
REPEAT=${REPEAT:-1}
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
# Short errors from the client, not anyhow backtraces.
export RUST_LIB_BACKTRACE=0

log() { printf '[run-socketio] %s\n' "$*" >&2; }

# 10,000 sockets need as many descriptors on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
need=$((100 + $(tr ', ' '\n' <<<"$ECHO_SOCKETS $BCAST_SOCKETS $IDLE_STEPS" | grep . | sort -n | tail -1)))
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $need ]]; then
    log "warning: ulimit -n is $(ulimit -n), runs above $(($(ulimit -n) - 100)) sockets will fail"
fi

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building (release)"
    # --bin too: a target filter like --example applies to every -p package.
    cargo build --release -p duplex-socketio --example bench_server -p duplex-bench --bin duplex-bench
    cargo build --release --manifest-path bench/peers/Cargo.toml --bin socketioxide-echo
    log "installing socket.io (npm ci)"
    (cd bench/node-socketio && npm ci --no-audit --no-fund --loglevel=error)
elif [[ ! -d bench/node-socketio/node_modules/socket.io ]]; then
    log "bench/node-socketio has no node_modules: run without SKIP_BUILD=1 once"
    exit 1
fi

# Private copies, so a rebuild elsewhere in the tree cannot swap a binary
# in the middle of the run.
BIN=$(mktemp -d)
cp target/release/examples/bench_server target/release/duplex-bench \
    bench/peers/target/release/socketioxide-echo "$BIN/"

declare -A PID URL
CLIENT_PID=""
cleanup() {
    local name
    if [[ -n $CLIENT_PID ]]; then
        kill "$CLIENT_PID" 2>/dev/null || true
        wait "$CLIENT_PID" 2>/dev/null || true
    fi
    for name in "${!PID[@]}"; do
        kill "${PID[$name]}" 2>/dev/null || true
        wait "${PID[$name]}" 2>/dev/null || true
    done
    rm -rf "$BIN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TS=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
RESULTS=bench/results/socketio-$TS.jsonl
LOGS=bench/results/socketio-$TS-logs
mkdir -p "$LOGS"
: >"$RESULTS"

# One line describing the run (ignored by the tables but for the header).
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1 | tr -d '\042\134')
crate_version() { awk -v n="$1" '$0=="name = \""n"\"" {getline; gsub(/[^0-9.]/,""); print; exit}' bench/peers/Cargo.lock; }
node_pkg_version() { node -p "require('./bench/node-socketio/node_modules/$1/package.json').version"; }
printf '{"scenario":"meta","date":"%s","kernel":"%s","cpu":"%s","cores":%s,"loadavg":"%s","git":"%s","socketioxide":"%s","node":"%s","socket_io":"%s","duration":%s,"warmup":%s,"window":%s,"repeat":%s}\n' \
    "$TS" "$(uname -r)" "$cpu_model" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD -- crates ':!crates/bench' 2>/dev/null || echo +dirty)" \
    "$(crate_version socketioxide)" "$(node --version)" "$(node_pkg_version socket.io)" \
    "$DURATION" "$WARMUP" "$WINDOW" "$REPEAT" >>"$RESULTS"

server_cmd() {
    case $1 in
    duplex) echo "$BIN/bench_server" ;;
    socketioxide) echo "$BIN/socketioxide-echo" ;;
    socket.io) echo "node $ROOT/bench/node-socketio/server.js" ;;
    *)
        log "unknown server $1"
        return 1
        ;;
    esac
}

STARTS=0
# Starts server $1 on a free port, pinned; sets PID[$1] and URL[$1].
start_server() {
    local name=$1 cmd=() logfile url="" pid
    read -r -a cmd <<<"$(server_cmd "$name")"
    STARTS=$((STARTS + 1))
    logfile=$LOGS/$name-$STARTS.log
    # Port 0: the kernel picks a free port and the server prints it.
    taskset -c "$SERVER_CORE" "${cmd[@]}" 127.0.0.1:0 >"$logfile" 2>&1 &
    pid=$!
    PID[$name]=$pid
    for _ in $(seq 100); do
        url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$logfile" | head -1 || true)
        [[ -n $url ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if [[ -z $url ]]; then
        log "$name did not start; its log:"
        cat "$logfile" >&2
        return 1
    fi
    URL[$name]=$url
    log "$name: pid $pid, $url, core $SERVER_CORE"
}

stop_server() {
    if [[ -n ${PID[$1]:-} ]]; then
        kill "${PID[$1]}" 2>/dev/null || true
        wait "${PID[$1]}" 2>/dev/null || true
        unset "PID[$1]"
    fi
}

ensure_running() {
    if ! kill -0 "${PID[$1]}" 2>/dev/null; then
        log "$1 died; restarting it"
        stop_server "$1"
        start_server "$1"
    fi
}

# Waits (at most 10 s) until server $1 stops using CPU, e.g. after the
# previous cell's sockets disconnected, so that its clean-up does not run
# on the shared server core during the next cell.
wait_quiet() {
    local pid=${PID[$1]} a b
    for _ in $(seq 40); do
        a=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$pid/stat" 2>/dev/null) || return 0
        sleep 0.25
        b=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$pid/stat" 2>/dev/null) || return 0
        ((b - a <= 1)) && return 0
    done
    log "$1 still busy after 10 s"
}

# Appends an error line for a failed measurement: $1 scenario, $2 server,
# $3 sockets, $4 extra JSON fields (may be empty), $5 message.
record_failure() {
    local msg
    msg=$(tr -d '\042\134' <<<"$5" | tr '\n' ' ' | cut -c1-300)
    printf '{"scenario":"%s","server":"%s","sockets":%s%s,"error":"%s"}\n' \
        "$1" "$2" "$3" "$4" "$msg" >>"$RESULTS"
}

# Runs the client pinned, stdout to $1, stderr to $2. In the background
# with a wait, so that an interrupt is handled at once.
client() {
    local out=$1 err=$2 rc=0
    shift 2
    taskset -c "$CLIENT_CORE" "$BIN/duplex-bench" "$@" >"$out" 2>"$err" &
    CLIENT_PID=$!
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=""
    return "$rc"
}

# Runs one measurement ($1 scenario, $2 server, $3 sockets, $4 extra JSON
# fields for a failure line, then the client's arguments after --url).
measure() {
    local scenario=$1 server=$2 sockets=$3 extra=$4
    shift 4
    ensure_running "$server"
    wait_quiet "$server"
    if client "$LOGS/client.out" "$LOGS/client.err" "$scenario" \
        --url "${URL[$server]}" --label "$server" --server-pid "${PID[$server]}" "$@"; then
        cat "$LOGS/client.out" >>"$RESULTS"
        cat "$LOGS/client.out" >&2
    else
        log "$server: $scenario x $sockets FAILED:"
        cat "$LOGS/client.err" >&2
        record_failure "$scenario" "$server" "$sockets" "$extra" "$(tail -3 "$LOGS/client.err")"
    fi
}

for server in $SERVERS; do
    start_server "$server"
done
for rep in $(seq "$REPEAT"); do
    for sockets in $ECHO_SOCKETS; do
        for server in $SERVERS; do
            log "[$rep/$REPEAT] $server: echo with acks, $sockets sockets"
            measure sio-echo "$server" "$sockets" "" \
                --sockets "$sockets" --size 20 --duration "$DURATION" --warmup "$WARMUP"
        done
    done
    for sockets in $BCAST_SOCKETS; do
        for load in $BCAST_LOAD; do
            rate=$(awk -v l="$load" -v s="$sockets" 'BEGIN { print l / s }')
            for server in $SERVERS; do
                log "[$rep/$REPEAT] $server: broadcast to $sockets sockets, rate ${rate}/s (0: max), window $WINDOW"
                measure sio-broadcast "$server" "$sockets" ",\"rate\":$rate,\"window\":$WINDOW" \
                    --sockets "$sockets" --room r --rate "$rate" --window "$WINDOW" \
                    --duration "$DURATION" --warmup "$WARMUP"
            done
        done
    done
done
for server in $SERVERS; do
    stop_server "$server"
done

# Idle memory, each on a fresh server: memory freed by the earlier runs
# would otherwise be reused by the idle sockets and hide their cost.
if [[ -n $IDLE_STEPS ]]; then
    for server in $SERVERS; do
        start_server "$server"
        log "$server: idle sockets $IDLE_STEPS"
        if ! client "$LOGS/idle.out" "$LOGS/client.err" sio-idle \
            --url "${URL[$server]}" --label "$server" \
            --sockets "$IDLE_STEPS" --server-pid "${PID[$server]}"; then
            log "$server: idle FAILED:"
            cat "$LOGS/client.err" >&2
            record_failure sio-idle "$server" "${IDLE_STEPS##*,}" "" "$(tail -3 "$LOGS/client.err")"
        fi
        cat "$LOGS/idle.out" >>"$RESULTS"
        cat "$LOGS/idle.out" >&2
        stop_server "$server"
    done
fi

"$BIN/duplex-bench" sio-report "$RESULTS" | tee "bench/results/socketio-$TS.md"
log "results: $RESULTS"
