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

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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
DUPLEX_ARGS=${DUPLEX_ARGS:-}
TEXT_FLAG=()
[[ ${TEXT:-0} == 1 ]] && TEXT_FLAG=(--text)

need=$((100 + $(largest "$CONNECTIONS $IDLE_STEPS")))
if few_files "$need"; then
    log "warning: ulimit -n is $(ulimit -n), runs above $(($(ulimit -n) - 100)) connections will fail"
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

private_copies target/release/examples/echo_server target/release/duplex-bench \
    bench/peers/target/release/fastwebsockets-echo \
    bench/peers/target/release/tungstenite-echo
open_results echo

# One line describing the run (ignored by the report tables).
printf '{"scenario":"meta","date":"%s","kernel":"%s","cpu":"%s","cores":%s,"loadavg":"%s","git":"%s","fastwebsockets":"%s","tokio_tungstenite":"%s","duration":%s,"warmup":%s}\n' \
    "$TS" "$(uname -r)" "$(cpu_model)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "$(git_desc)" "$(crate_version fastwebsockets)" "$(crate_version tokio-tungstenite)" \
    "$DURATION" "$WARMUP" >>"$RESULTS"

server_cmd() {
    case $1 in
    duplex) echo "$BIN/echo_server $DUPLEX_ARGS" ;;
    fastwebsockets) echo "$BIN/fastwebsockets-echo" ;;
    tokio-tungstenite) echo "$BIN/tungstenite-echo" ;;
    node-ws) echo "node $ROOT/bench/node-socketio/ws-echo.js" ;;
    *)
        log "unknown server $1"
        return 1
        ;;
    esac
}

# Echo matrix. All servers stay up (idle ones cost nothing) and every cell
# runs on each server in turn, so drifting background load on a shared
# machine hits all of them alike instead of whichever ran last.
for server in $SERVERS; do
    start_server "$server" ws
done
for rep in $(seq "$REPEAT"); do
    for size in $SIZES; do
        for conns in $CONNECTIONS; do
            for server in $SERVERS; do
                ensure_running "$server" ws
                log "[$rep/$REPEAT] $server: ${size} B x $conns connections"
                if client "$LOGS/client.out" "$LOGS/client.err" echo \
                    --url "${URL[$server]}/" --label "$server" \
                    --connections "$conns" --size "$size" \
                    --duration "$DURATION" --warmup "$WARMUP" \
                    --server-pid "${PID[$server]}" "${TEXT_FLAG[@]}"; then
                    cat "$LOGS/client.out" >>"$RESULTS"
                    cat "$LOGS/client.out" >&2
                else
                    log "$server: ${size} B x $conns connections FAILED:"
                    cat "$LOGS/client.err" >&2
                    record_failure echo "$server" "\"connections\":$conns,\"size\":$size" "$(tail -3 "$LOGS/client.err")"
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
        start_server "$server" ws
        log "$server: idle connections $IDLE_STEPS"
        if ! client "$LOGS/idle.out" "$LOGS/client.err" idle \
            --url "${URL[$server]}/" --label "$server" \
            --connections "$IDLE_STEPS" --server-pid "${PID[$server]}"; then
            log "$server: idle FAILED:"
            cat "$LOGS/client.err" >&2
            record_failure idle "$server" "\"connections\":${IDLE_STEPS##*,},\"size\":0" "$(tail -3 "$LOGS/client.err")"
        fi
        cat "$LOGS/idle.out" >>"$RESULTS"
        cat "$LOGS/idle.out" >&2
        stop_server "$server"
    done
fi

"$BIN/duplex-bench" report "$RESULTS" | tee "${RESULTS%.jsonl}.md"
log "results: $RESULTS"
