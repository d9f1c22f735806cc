#!/usr/bin/env bash
# Fan-out benchmark: one publisher, N subscribers, publish-to-receipt
# latency and deliveries per server CPU-second, for
# - duplex's plain WebSocket (/connection/websocket, Centrifugo JSON
#   protocol) with publications made through the server API
#   (POST /api/publish), label duplex-ws;
# - duplex's Socket.IO mapping (`subscribe` event, `publication` events),
#   same API publisher, label duplex-sio;
# - socketioxide 0.18 (bench/peers, socketioxide-echo) and Node socket.io
#   4.8 (bench/node-socketio): room broadcast (`join`, then a publisher
#   socket emits `bcast` and the server emits `msg` to the room).
# Then the same notification stream delivered to duplex's Socket.IO clients
# by HTTP long-polling and by WebSocket (and to plain-WebSocket clients), at
# fixed rates; connection storms (N clients connecting and subscribing at
# once, every server) and a recovery storm (plain WebSocket clients
# reconnecting at once, recovering the publications they missed); and
# server memory per idle subscribed connection (duplex-ws, duplex-sio; a
# fresh server for each).
#
# Everything is built (release) or installed in this run. Each server is
# pinned to SERVER_CORE (default 0), the load generator (duplex-bench) to
# CLIENT_CORE (default 1). duplex runs on one tokio worker (its runtime
# sizes itself to the one core it may use), without --dev: subscribers
# carry HS256 tokens signed with the secret the server is given. Channels
# keep no history and no presence unless HISTORY=1 (the peers keep none).
# Everything listens on 127.0.0.1 only, on ports the kernel picks; every
# process started here is stopped on exit.
#
# Usage:
#   bench/run-fanout.sh                 # full matrix
#   QUICK=1 bench/run-fanout.sh         # smoke run: 1,000 subscribers, 2 s
#
# Environment (all optional):
#   DURATION=5 WARMUP=1            measured / warm-up seconds per cell
#   SUBSCRIBERS="1000 10000"       subscriber counts
#   LOADS="0/2 0/16 100000/16"     cells as OFFERED/WINDOW: offered
#                                  deliveries per second (0: as fast as the
#                                  window allows; the publication rate is
#                                  OFFERED / subscribers) and the most
#                                  publications in flight
#   SIZE=100                       bytes of each publication's data
#   SERVERS="duplex-ws duplex-sio socketioxide socket.io"
#   REPEAT=1                       runs per cell (tables show the median)
#   POLL_SUBSCRIBERS=1000          polling vs WebSocket: subscribers ("" skips)
#   POLL_LOADS="20000/16 100000/16" offered deliveries/s / window
#   STORM_CONNECTIONS="10000"      storm sizes ("" skips storms)
#   STORM_CONCURRENCY="0 500"      connects in flight (0: all at once)
#   STORM_SERVERS="duplex-ws duplex-sio socketioxide socket.io"
#   RECOVERY_MISSED=100            publications missed in the recovery storm
#   IDLE_STEPS=1000,5000,15000     idle steps ("" skips idle)
#   IDLE_SERVERS="duplex-ws duplex-sio"
#   HISTORY=0                      1: channels keep 100 publications
#   SERVER_CORE=0 CLIENT_CORE=1    cores to pin to
#   PROCESSES=1                    client processes for fanout, storm and
#                                  sub-idle (duplex-bench --processes): the
#                                  client can then hold more than one
#                                  process's open-file limit (the server
#                                  cannot)
#   SKIP_BUILD=1                   use what is already built / installed
#
# Output: bench/results/fanout-<UTC timestamp>.jsonl (one JSON line per
# measurement; `duplex-bench plot` draws it), .md (the tables, also
# printed), and -logs/ (server logs).
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    : "${DURATION:=2}" "${WARMUP:=0.5}" "${SUBSCRIBERS:=1000}" "${LOADS:=0/8}"
    : "${IDLE_STEPS:=1000,2000}" "${POLL_SUBSCRIBERS:=200}" "${POLL_LOADS:=4000/16}"
    : "${STORM_CONNECTIONS:=1000}" "${STORM_CONCURRENCY:=0}" "${RECOVERY_MISSED:=10}"
fi
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
SUBSCRIBERS=${SUBSCRIBERS:-1000 10000}
LOADS=${LOADS:-0/2 0/16 100000/16}
SIZE=${SIZE:-100}
SERVERS=${SERVERS:-duplex-ws duplex-sio socketioxide socket.io}
REPEAT=${REPEAT:-1}
POLL_SUBSCRIBERS=${POLL_SUBSCRIBERS-1000}
POLL_LOADS=${POLL_LOADS:-20000/16 100000/16}
STORM_CONNECTIONS=${STORM_CONNECTIONS-10000}
STORM_CONCURRENCY=${STORM_CONCURRENCY:-0 500}
STORM_SERVERS=${STORM_SERVERS:-duplex-ws duplex-sio socketioxide socket.io}
RECOVERY_MISSED=${RECOVERY_MISSED:-100}
IDLE_STEPS=${IDLE_STEPS-1000,5000,15000}
IDLE_SERVERS=${IDLE_SERVERS:-duplex-ws duplex-sio}
HISTORY=${HISTORY:-0}
PROCESSES=${PROCESSES:-1}

need=$((100 + $(largest "$SUBSCRIBERS $IDLE_STEPS $STORM_CONNECTIONS $((2 * ${POLL_SUBSCRIBERS:-0}))")))
if few_files "$need"; then
    log "warning: ulimit -n is $(ulimit -n): the server cannot hold more than $(($(ulimit -n) - 100)) connections; the client needs PROCESSES>1 beyond that"
fi

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building (release)"
    cargo build --release -p duplex-server --bin duplex -p duplex-bench --bin duplex-bench
    cargo build --release --manifest-path bench/peers/Cargo.toml --bin socketioxide-echo
    log "installing socket.io (npm ci)"
    (cd bench/node-socketio && npm ci --no-audit --no-fund --loglevel=error)
elif [[ ! -d bench/node-socketio/node_modules/socket.io ]]; then
    log "bench/node-socketio has no node_modules: run without SKIP_BUILD=1 once"
    exit 1
fi

private_copies target/release/duplex target/release/duplex-bench \
    bench/peers/target/release/socketioxide-echo

API_KEY=bench-api-key
TOKEN_SECRET=bench-token-secret
cat >"$BIN/duplex.toml" <<EOF
# Written by bench/run-fanout.sh.
[channel]
allow_subscribe_for_client = true

# The recovery storm's channels (hist:...).
[[namespaces]]
name = "hist"
history_size = 1000
history_ttl = "5m"
allow_recovery = true
allow_subscribe_for_client = true
EOF
if [[ $HISTORY == 1 ]]; then
    printf 'history_size = 100\nhistory_ttl = "5m"\n' >>"$BIN/duplex.toml"
fi

open_results fanout

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
GIT_DESC=$(git_desc)
# The run's description; written again at the end with the load average
# then (the tables use the last one).
meta() {
    printf '{"scenario":"meta","date":"%s","kernel":"%s","cpu":"%s","cores":%s,"loadavg":"%s","loadavg_end":"%s","git":"%s","socketioxide":"%s","node":"%s","socket_io":"%s","duration":%s,"warmup":%s,"size":%s,"history":%s,"repeat":%s}\n' \
        "$TS" "$(uname -r)" "$(cpu_model)" "$(nproc)" "$LOAD_START" "$1" \
        "$GIT_DESC" \
        "$(crate_version socketioxide)" "$(node --version)" "$(node_pkg_version socket.io)" \
        "$DURATION" "$WARMUP" "$SIZE" "$HISTORY" "$REPEAT" >>"$RESULTS"
}
meta ""

# The process behind a label.
process_of() {
    case $1 in
    duplex-*) echo duplex ;;
    *) echo "$1" ;;
    esac
}

server_cmd() {
    case $1 in
    duplex) echo "$BIN/duplex serve --config $BIN/duplex.toml --storage memory --api-key $API_KEY --token-secret $TOKEN_SECRET --data-dir $BIN/data --log-level warn,duplex_server::run=info --listen" ;;
    socketioxide) echo "$BIN/socketioxide-echo" ;;
    socket.io) echo "node $ROOT/bench/node-socketio/server.js" ;;
    *)
        log "unknown server $1"
        return 1
        ;;
    esac
}

# Every client run spreads its connections over PROCESSES processes.
CLIENT_ARGS=(--processes "$PROCESSES")

# The subscriber and publisher arguments for label $1.
target_args() {
    local proc url
    proc=$(process_of "$1")
    url=${URL[$proc]}
    case $1 in
    duplex-ws)
        echo "--subscriber ws --url ${url/http:/ws:}/connection/websocket --publisher api --api-url $url --api-key $API_KEY --token-secret $TOKEN_SECRET"
        ;;
    duplex-sio)
        echo "--subscriber sio --url $url --publisher api --api-url $url --api-key $API_KEY --token-secret $TOKEN_SECRET"
        ;;
    duplex-sio-polling)
        echo "--subscriber sio-polling --url $url --publisher api --api-url $url --api-key $API_KEY --token-secret $TOKEN_SECRET"
        ;;
    *) echo "--subscriber sio-room --url $url --publisher sio-bcast" ;;
    esac
}

# One fan-out measurement: $1 label, $2 subscribers, $3 OFFERED/WINDOW, $4 rep.
fanout_cell() {
    local label=$1 subs=$2 load=$3 rep=$4 offered window rate proc args
    offered=${load%/*}
    window=${load#*/}
    rate=$(awk -v l="$offered" -v s="$subs" 'BEGIN { print l / s }')
    proc=$(process_of "$label")
    ensure_running "$proc"
    wait_quiet "$proc"
    log "[$rep/$REPEAT] $label: $subs subscribers, ${rate} pub/s (0: max), window $window"
    read -r -a args <<<"$(target_args "$label")"
    if client "$LOGS/client.out" "$LOGS/client.err" fanout "${args[@]}" \
        --label "$label" --server-pid "${PID[$proc]}" --subscribers "$subs" \
        --size "$SIZE" --rate "$rate" --window "$window" \
        --duration "$DURATION" --warmup "$WARMUP"; then
        cat "$LOGS/client.out" >>"$RESULTS"
        cut -c1-400 "$LOGS/client.out" >&2
    else
        log "$label: fanout x $subs FAILED:"
        tail -5 "$LOGS/client.err" >&2
        record_failure fanout "$label" \
            "\"subscribers\":$subs,\"rate\":$rate,\"window\":$window" \
            "$(tail -3 "$LOGS/client.err")"
    fi
}

# The subscriber arguments only (no publisher) for label $1, in SUB_ARGS.
sub_args_of() {
    local args i
    read -r -a args <<<"$(target_args "$1")"
    SUB_ARGS=()
    for ((i = 0; i < ${#args[@]}; i += 2)); do
        case ${args[i]} in
        --publisher | --api-url | --api-key) ;;
        *) SUB_ARGS+=("${args[i]}" "${args[i + 1]}") ;;
        esac
    done
}

# One storm: $1 label, $2 connections, $3 concurrency, then extra arguments.
storm_cell() {
    local label=$1 conns=$2 conc=$3 proc scenario=storm
    shift 3
    [[ $* == *--recover-missed* ]] && scenario=recovery-storm
    proc=$(process_of "$label")
    ensure_running "$proc"
    wait_quiet "$proc"
    log "$label: $scenario of $conns connections, $conc in flight (0: all)"
    sub_args_of "$label"
    if client "$LOGS/client.out" "$LOGS/client.err" storm "${SUB_ARGS[@]}" \
        --label "$label" --server-pid "${PID[$proc]}" --connections "$conns" \
        --concurrency "$conc" "$@"; then
        cat "$LOGS/client.out" >>"$RESULTS"
        cat "$LOGS/client.out" >&2
    else
        log "$label: $scenario FAILED:"
        tail -5 "$LOGS/client.err" >&2
        record_failure "$scenario" "$label" "\"connections\":$conns,\"concurrency\":$conc" \
            "$(tail -3 "$LOGS/client.err")"
    fi
    # Let the server see every close before the next cell.
    sleep 2
}

for rep in $(seq "$REPEAT"); do
    for subs in $SUBSCRIBERS; do
        for load in $LOADS; do
            for label in $SERVERS; do
                fanout_cell "$label" "$subs" "$load" "$rep"
            done
        done
    done
    # Polling vs WebSocket: the same stream to duplex's Socket.IO clients on
    # either transport, and to plain-WebSocket clients.
    for subs in $POLL_SUBSCRIBERS; do
        for load in $POLL_LOADS; do
            for label in duplex-ws duplex-sio duplex-sio-polling; do
                fanout_cell "$label" "$subs" "$load" "$rep"
            done
        done
    done
done
for conns in $STORM_CONNECTIONS; do
    for conc in $STORM_CONCURRENCY; do
        for label in $STORM_SERVERS; do
            storm_cell "$label" "$conns" "$conc"
        done
    done
    storm_cell duplex-ws "$conns" 0 --channel "hist:storm$conns" \
        --recover-missed "$RECOVERY_MISSED" --api-url "${URL[duplex]}" --api-key "$API_KEY"
done
for proc in "${!PID[@]}"; do
    stop_server "$proc"
done

# Idle memory, each on a fresh server.
if [[ -n $IDLE_STEPS ]]; then
    for label in $IDLE_SERVERS; do
        proc=$(process_of "$label")
        start_server "$proc"
        log "$label: idle subscribed connections $IDLE_STEPS"
        sub_args_of "$label"
        if client "$LOGS/idle.out" "$LOGS/client.err" sub-idle "${SUB_ARGS[@]}" \
            --label "$label" --connections "$IDLE_STEPS" --server-pid "${PID[$proc]}"; then
            :
        else
            log "$label: idle FAILED:"
            tail -5 "$LOGS/client.err" >&2
            record_failure sub-idle "$label" "\"connections\":${IDLE_STEPS##*,}" \
                "$(tail -3 "$LOGS/client.err")"
        fi
        cat "$LOGS/idle.out" >>"$RESULTS"
        cat "$LOGS/idle.out" >&2
        stop_server "$proc"
    done
fi

meta "$(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN/duplex-bench" fanout-report "$RESULTS" | tee "${RESULTS%.jsonl}.md"
log "results: $RESULTS"
