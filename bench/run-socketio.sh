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

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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

need=$((100 + $(largest "$ECHO_SOCKETS $BCAST_SOCKETS $IDLE_STEPS")))
if few_files "$need"; then
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

private_copies target/release/examples/bench_server target/release/duplex-bench \
    bench/peers/target/release/socketioxide-echo
open_results socketio

# One line describing the run (ignored by the tables but for the header).
printf '{"scenario":"meta","date":"%s","kernel":"%s","cpu":"%s","cores":%s,"loadavg":"%s","git":"%s","socketioxide":"%s","node":"%s","socket_io":"%s","duration":%s,"warmup":%s,"window":%s,"repeat":%s}\n' \
    "$TS" "$(uname -r)" "$(cpu_model)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "$(git_desc)" "$(crate_version socketioxide)" "$(node --version)" "$(node_pkg_version socket.io)" \
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
        record_failure "$scenario" "$server" "\"sockets\":$sockets$extra" "$(tail -3 "$LOGS/client.err")"
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
            record_failure sio-idle "$server" "\"sockets\":${IDLE_STEPS##*,}" "$(tail -3 "$LOGS/client.err")"
        fi
        cat "$LOGS/idle.out" >>"$RESULTS"
        cat "$LOGS/idle.out" >&2
        stop_server "$server"
    done
fi

"$BIN/duplex-bench" sio-report "$RESULTS" | tee "${RESULTS%.jsonl}.md"
log "results: $RESULTS"
