#!/usr/bin/env bash
# End-to-end WebSocket echo benchmark: duplex's echo server against
# fastwebsockets' and tokio-tungstenite's (bench/peers), all loaded by the
# same client (duplex-bench, built on ws-proto).
#
# Each server runs single-threaded, pinned to one core (SERVER_CORE, default
# 0); the client runs on the other (CLIENT_CORE, default 1). For every
# message size x connection count the client keeps one message in flight
# per connection and reports messages per server CPU-second; the cells are
# interleaved across the servers. Then each server is started fresh and
# the idle-memory slope is measured.
#
# Usage:
#   bench/run-echo.sh              # full matrix, ~4 min + ~2 min idle memory
#   QUICK=1 bench/run-echo.sh      # smoke run: 20 B x 100 connections, 2 s
#
# Environment (all optional):
#   DURATION=5 WARMUP=1          measured / warm-up seconds per cell
#   SIZES="20 1024 16384"        message sizes in bytes
#   CONNECTIONS="1 100 10000"    connection counts
#   IDLE_STEPS=1000,5000,15000   idle connection steps ("" skips idle)
#   SERVERS="duplex fastwebsockets tokio-tungstenite node-ws"
#   REPEAT=1                     runs per cell (the table shows the median)
#   TEXT=1                       text messages instead of binary
#   SERVER_CORE=0 CLIENT_CORE=1  cores to pin to
#   DUPLEX_ARGS=""               extra arguments for duplex's echo_server
#   SKIP_BUILD=1                 use the binaries already built
#
# Output: bench/results/echo-<UTC timestamp>.jsonl (one JSON line per
# measurement), .md (the tables, also printed), and -logs/ (server stderr).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [[ ${QUICK:-0} == 1 ]]; then
    : "${DURATION:=2}" "${WARMUP:=1}" "${SIZES:=20}" "${CONNECTIONS:=100}"
    : "${IDLE_STEPS:=1000,2000}"
fi
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
SIZES=${SIZES:-20 1024 16384}
CONNECTIONS=${CONNECTIONS:-1 100 10000}
IDLE_STEPS=${IDLE_STEPS-1000,5000,15000}
SERVERS=${SERVERS:-duplex fastwebsockets tokio-tungstenite node-ws}
REPEAT=${REPEAT:-1}
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
DUPLEX_ARGS=${DUPLEX_ARGS:-}
TEXT_FLAG=()
[[ ${TEXT:-0} == 1 ]] && TEXT_FLAG=(--text)
# Short errors from the client, not anyhow backtraces.
export RUST_LIB_BACKTRACE=0

log() { printf '[run-echo] %s\n' "$*" >&2; }

# 10,000 connections (15,000 idle) need as many descriptors on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
need=$((100 + $(tr ', ' '\n' <<<"$CONNECTIONS $IDLE_STEPS" | sort -n | tail -1)))
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $need ]]; then
    log "warning: ulimit -n is $(ulimit -n), runs above $(( $(ulimit -n) - 100 )) connections will fail"
fi

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building (release)"
    # --bin too: a target filter like --example applies to every -p package.
    cargo build --release -p duplex-ws --example echo_server -p duplex-bench --bin duplex-bench
    cargo build --release --manifest-path bench/peers/Cargo.toml \
        --bin fastwebsockets-echo --bin tungstenite-echo
    log "installing the Node ws peer (npm ci)"
    (cd bench/node-socketio && npm ci --no-audit --no-fund --loglevel=error)
elif [[ $SERVERS == *node-ws* && ! -d bench/node-socketio/node_modules/ws ]]; then
    log "bench/node-socketio has no node_modules: run without SKIP_BUILD=1 once"
    exit 1
fi

# Private copies, so a rebuild elsewhere in the tree cannot swap a binary
# in the middle of the run.
BIN=$(mktemp -d)
cp target/release/examples/echo_server target/release/duplex-bench \
    bench/peers/target/release/fastwebsockets-echo \
    bench/peers/target/release/tungstenite-echo "$BIN/"

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
RESULTS=bench/results/echo-$TS.jsonl
LOGS=bench/results/echo-$TS-logs
mkdir -p "$LOGS"
: >"$RESULTS"

# One line describing the run (ignored by the report tables).
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1 | tr -d '\042\134')
peer_version() { awk -v n="$1" '$0=="name = \""n"\"" {getline; gsub(/[^0-9.]/,""); print; exit}' bench/peers/Cargo.lock; }
printf '{"scenario":"meta","date":"%s","kernel":"%s","cpu":"%s","cores":%s,"loadavg":"%s","git":"%s","fastwebsockets":"%s","tokio_tungstenite":"%s","duration":%s,"warmup":%s}\n' \
    "$TS" "$(uname -r)" "$cpu_model" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo none)" \
    "$(peer_version fastwebsockets)" "$(peer_version tokio-tungstenite)" \
    "$DURATION" "$WARMUP" >>"$RESULTS"

server_cmd() {
    case $1 in
    duplex) echo "$BIN/echo_server" ;;
    fastwebsockets) echo "$BIN/fastwebsockets-echo" ;;
    tokio-tungstenite) echo "$BIN/tungstenite-echo" ;;
    node-ws) echo "node $ROOT/bench/node-socketio/ws-echo.js" ;;
    *)
        log "unknown server $1"
        return 1
        ;;
    esac
}

STARTS=0
# Starts server $1 on a free port, pinned; sets PID[$1] and URL[$1].
start_server() {
    local name=$1 cmd=() extra=() logfile url="" pid
    read -r -a cmd <<<"$(server_cmd "$name")"
    if [[ $name == duplex && -n $DUPLEX_ARGS ]]; then read -r -a extra <<<"$DUPLEX_ARGS"; fi
    STARTS=$((STARTS + 1))
    logfile=$LOGS/$name-$STARTS.log
    # Port 0: the kernel picks a free port and the server prints it, so
    # the benchmark never collides with anything else on the machine.
    taskset -c "$SERVER_CORE" "${cmd[@]}" 127.0.0.1:0 "${extra[@]}" >"$logfile" 2>&1 &
    pid=$!
    PID[$name]=$pid
    for _ in $(seq 100); do
        url=$(grep -o 'ws://127\.0\.0\.1:[0-9]*' "$logfile" | head -1 || true)
        [[ -n $url ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if [[ -z $url ]]; then
        log "$name did not start; its log:"
        cat "$logfile" >&2
        return 1
    fi
    URL[$name]=$url/
    log "$name: pid $pid, ${URL[$name]}, core $SERVER_CORE"
}

stop_server() {
    if [[ -n ${PID[$1]:-} ]]; then
        kill "${PID[$1]}" 2>/dev/null || true
        wait "${PID[$1]}" 2>/dev/null || true
        unset "PID[$1]"
    fi
}

# Appends an error line for a failed measurement: $1 scenario, $2 server,
# $3 connections, $4 size, $5 message.
record_failure() {
    local msg
    msg=$(tr -d '\042\134' <<<"$5" | tr '\n' ' ' | cut -c1-300)
    printf '{"scenario":"%s","server":"%s","connections":%s,"size":%s,"error":"%s"}\n' \
        "$1" "$2" "$3" "$4" "$msg" >>"$RESULTS"
}

# Runs the client pinned, stdout to $1, stderr to $2. In the background
# with a wait, so that an interrupt is handled at once (bash runs traps
# only between foreground commands, but does interrupt a wait).
client() {
    local out=$1 err=$2 rc=0
    shift 2
    taskset -c "$CLIENT_CORE" "$BIN/duplex-bench" "$@" >"$out" 2>"$err" &
    CLIENT_PID=$!
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=""
    return "$rc"
}

# Echo matrix. All servers stay up (idle ones cost nothing) and every cell
# runs on each server in turn, so drifting background load on a shared
# machine hits all of them alike instead of whichever ran last.
for server in $SERVERS; do
    start_server "$server"
done
for rep in $(seq "$REPEAT"); do
    for size in $SIZES; do
        for conns in $CONNECTIONS; do
            for server in $SERVERS; do
                if ! kill -0 "${PID[$server]}" 2>/dev/null; then
                    log "$server died; restarting it"
                    stop_server "$server"
                    start_server "$server"
                fi
                log "[$rep/$REPEAT] $server: ${size} B x $conns connections"
                if client "$LOGS/client.out" "$LOGS/client.err" echo \
                    --url "${URL[$server]}" --label "$server" \
                    --connections "$conns" --size "$size" \
                    --duration "$DURATION" --warmup "$WARMUP" \
                    --server-pid "${PID[$server]}" "${TEXT_FLAG[@]}"; then
                    cat "$LOGS/client.out" >>"$RESULTS"
                    cat "$LOGS/client.out" >&2
                else
                    log "$server: ${size} B x $conns connections FAILED:"
                    cat "$LOGS/client.err" >&2
                    record_failure echo "$server" "$conns" "$size" "$(tail -3 "$LOGS/client.err")"
                fi
            done
        done
    done
done
for server in $SERVERS; do
    stop_server "$server"
done

# Idle memory, each on a fresh server: memory freed by the echo runs would
# otherwise be reused by the idle connections and hide their cost.
if [[ -n $IDLE_STEPS ]]; then
    for server in $SERVERS; do
        start_server "$server"
        log "$server: idle connections $IDLE_STEPS"
        if ! client "$LOGS/idle.out" "$LOGS/client.err" idle \
            --url "${URL[$server]}" --label "$server" \
            --connections "$IDLE_STEPS" --server-pid "${PID[$server]}"; then
            log "$server: idle FAILED:"
            cat "$LOGS/client.err" >&2
            record_failure idle "$server" "${IDLE_STEPS##*,}" 0 "$(tail -3 "$LOGS/client.err")"
        fi
        cat "$LOGS/idle.out" >>"$RESULTS"
        cat "$LOGS/idle.out" >&2
        stop_server "$server"
    done
fi

"$BIN/duplex-bench" report "$RESULTS" | tee "bench/results/echo-$TS.md"
log "results: $RESULTS"
