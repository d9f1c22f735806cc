#!/usr/bin/env bash
# Many nodes over Redis: cross-node fan-out throughput and latency, and
# Redis commands per publication, for 2 and 4 nodes of
# - duplex (`duplex serve --broker redis://...`), subscribers on the plain
#   WebSocket endpoint (Centrifugo JSON protocol), label duplex-ws;
# - the same duplex nodes, subscribers on duplex's Socket.IO mapping
#   (/socket.io/, `subscribe` event), label duplex-sio;
# - duplex-ws again on a channel that keeps history (100 publications,
#   recoverable from any node: one script call per publication stores it
#   and publishes it), label duplex-ws-history; the other rows' channels
#   keep none, like the peer's rooms;
# - Node socket.io 4.8 with @socket.io/redis-adapter
#   (bench/node-socketio/server.js with a Redis URL), subscribers joining a room,
#   label socket.io;
# all on one Redis of the run's own (a redis-server started here on a free
# port, no persistence), one server kind at a time.
#
# Subscribers are spread over the nodes in equal blocks; the publisher is
# on node 0 (duplex: POST /api/publish to node 0; socket.io: a socket on
# node 0 emitting `bcast`), so with N nodes (N-1)/N of the deliveries cross
# Redis. `duplex-bench cluster` reads `INFO cpu commandstats` of the Redis
# right before and after the measured window (see crates/bench/src/cluster.rs).
#
# Pinning: every node and the Redis share SERVER_CORE (default 0), the load
# generator runs on CLIENT_CORE (default 1). duplex's runtime sizes itself
# to the one core it may use; Node is single-threaded anyway.
#
# Usage:
#   bench/run-cluster.sh            # 2 and 4 nodes, 1,000 subscribers
#   QUICK=1 bench/run-cluster.sh    # smoke run: 2 s per cell, one load
#
# Environment (all optional):
#   NODES="2 4"                     node counts
#   SUBSCRIBERS=1000                subscribers over all nodes
#   LOADS="0/8 20/8"                cells as RATE/WINDOW: publications per
#                                   second (0: as fast as the window allows)
#                                   and most publications in flight
#   SIZE=100                        bytes of each publication's data
#   SERVERS="duplex-ws duplex-sio duplex-ws-history socket.io"
#   DURATION=5 WARMUP=1 REPEAT=1
#   SERVER_CORE=0 CLIENT_CORE=1
#   SKIP_BUILD=1                    use what is already built / installed
#
# Output: bench/results/cluster-<UTC timestamp>.jsonl (one JSON line per
# cell), .md (the tables, also printed), -logs/ (server and Redis logs).
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    : "${DURATION:=2}" "${WARMUP:=0.5}" "${LOADS:=0/8}"
fi
NODES=${NODES:-2 4}
SUBSCRIBERS=${SUBSCRIBERS:-1000}
LOADS=${LOADS:-0/8 20/8}
SIZE=${SIZE:-100}
SERVERS=${SERVERS:-duplex-ws duplex-sio duplex-ws-history socket.io}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
REPEAT=${REPEAT:-1}

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building (release)"
    cargo build --release -p duplex-server --bin duplex -p duplex-bench --bin duplex-bench
    log "installing socket.io and the Redis adapter (npm ci)"
    (cd bench/node-socketio && npm ci --no-audit --no-fund --loglevel=error)
elif [[ ! -d bench/node-socketio/node_modules/@socket.io/redis-adapter ]]; then
    log "bench/node-socketio has no Redis adapter installed: run without SKIP_BUILD=1 once"
    exit 1
fi
command -v redis-server >/dev/null || {
    log "redis-server is missing (scripts/ensure-redis.sh installs it)"
    exit 1
}

private_copies target/release/duplex target/release/duplex-bench

API_KEY=bench-api-key
TOKEN_SECRET=bench-token-secret
cat >"$BIN/duplex.toml" <<EOF
# Written by bench/run-cluster.sh.
[channel]
allow_subscribe_for_client = true

# The duplex-ws-history rows' channels (hist:...).
[[namespaces]]
name = "hist"
history_size = 100
history_ttl = "5m"
allow_recovery = true
allow_subscribe_for_client = true
EOF

# The nodes of the current cell and the run's own Redis, stopped on exit
# with everything lib.sh stops.
PIDS=()
REDIS_PID=""
cleanup_more() {
    local pid
    for pid in "${PIDS[@]}" $REDIS_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

open_results cluster

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The run's own Redis.
REDIS_PORT=$(free_port)
REDIS_ADDR=127.0.0.1:$REDIS_PORT
taskset -c "$SERVER_CORE" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
    --save "" --appendonly no --dir "$BIN" --logfile "$LOGS/redis.log" &
REDIS_PID=$!
for _ in $(seq 50); do
    [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && break
    sleep 0.1
done
[[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] || {
    log "redis-server did not start:"
    cat "$LOGS/redis.log" >&2
    exit 1
}
log "redis: pid $REDIS_PID, $REDIS_ADDR, core $SERVER_CORE"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
GIT_DESC=$(git_desc)
meta() {
    printf '{"scenario":"meta","date":"%s","kernel":"%s","cpu":"%s","cores":%s,"loadavg":"%s","loadavg_end":"%s","git":"%s","node":"%s","socket_io":"%s","redis_adapter":"%s","redis_version":"%s","duration":%s,"warmup":%s,"size":%s,"repeat":%s}\n' \
        "$TS" "$(uname -r)" "$(cpu_model)" "$(nproc)" "$LOAD_START" "$1" "$GIT_DESC" \
        "$(node --version)" "$(node_pkg_version socket.io)" \
        "$(node_pkg_version @socket.io/redis-adapter)" \
        "$(redis-cli -p "$REDIS_PORT" info server | sed -n 's/^redis_version:\([^\r]*\).*/\1/p')" \
        "$DURATION" "$WARMUP" "$SIZE" "$REPEAT" >>"$RESULTS"
}
meta ""

URLS=()
# Starts $2 nodes of process kind $1 (duplex or socket.io), pinned; fills
# PIDS and URLS.
start_nodes() {
    local kind=$1 n=$2 i logfile url pid
    PIDS=()
    URLS=()
    STARTS=$((STARTS + 1))
    for ((i = 0; i < n; i++)); do
        logfile=$LOGS/$kind-$STARTS-node$i.log
        case $kind in
        duplex)
            DUPLEX_BROKER_PREFIX="bench$STARTS" taskset -c "$SERVER_CORE" \
                "$BIN/duplex" serve --config "$BIN/duplex.toml" --storage memory \
                --broker "redis://$REDIS_ADDR" --node-name "node$i" \
                --api-key "$API_KEY" --token-secret "$TOKEN_SECRET" \
                --data-dir "$BIN/data$STARTS-$i" --log-level warn,duplex_server::run=info \
                --listen 127.0.0.1:0 >"$logfile" 2>&1 &
            ;;
        socket.io)
            taskset -c "$SERVER_CORE" node "$ROOT/bench/node-socketio/server.js" \
                127.0.0.1:0 "redis://$REDIS_ADDR" "bench$STARTS" >"$logfile" 2>&1 &
            ;;
        esac
        pid=$!
        PIDS+=("$pid")
        url=$(listening_url "$kind node $i" "$pid" "$logfile" http) || return 1
        URLS+=("$url")
    done
    log "$kind x $n: pids ${PIDS[*]}, ${URLS[*]}"
    # Let every node finish connecting to Redis.
    sleep 1
}

stop_nodes() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
    URLS=()
}

# One measurement: $1 label, $2 nodes, $3 RATE/WINDOW, $4 repetition.
cell() {
    local label=$1 n=$2 load=$3 rep=$4 rate window urls pids args=() u channel
    rate=${load%/*}
    window=${load#*/}
    pids=$(
        IFS=,
        echo "${PIDS[*]}"
    )
    channel="bench-$label-$n-$rep-$rate"
    case $label in
    duplex-ws | duplex-ws-history)
        [[ $label == duplex-ws-history ]] && channel="hist:$channel"
        urls=""
        for u in "${URLS[@]}"; do urls+="${urls:+,}${u/http:/ws:}/connection/websocket"; done
        args=(--subscriber ws --publisher api --api-url "${URLS[0]}" --api-key "$API_KEY"
            --token-secret "$TOKEN_SECRET")
        ;;
    duplex-sio)
        urls=$(
            IFS=,
            echo "${URLS[*]}"
        )
        args=(--subscriber sio --publisher api --api-url "${URLS[0]}" --api-key "$API_KEY"
            --token-secret "$TOKEN_SECRET")
        ;;
    socket.io)
        urls=$(
            IFS=,
            echo "${URLS[*]}"
        )
        args=(--subscriber sio-room --publisher sio-bcast)
        ;;
    esac
    log "[$rep/$REPEAT] $label x $n nodes: $SUBSCRIBERS subscribers, rate $rate/s (0: max), window $window"
    if client "$LOGS/client.out" "$LOGS/client.err" cluster "${args[@]}" --urls "$urls" \
        --server-pids "$pids" --redis "$REDIS_ADDR" --label "$label" \
        --channel "$channel" \
        --subscribers "$SUBSCRIBERS" --size "$SIZE" --rate "$rate" --window "$window" \
        --duration "$DURATION" --warmup "$WARMUP"; then
        cat "$LOGS/client.out" >>"$RESULTS"
        cut -c1-400 "$LOGS/client.out" >&2
    else
        log "$label x $n: FAILED:"
        tail -5 "$LOGS/client.err" >&2
        record_failure cluster "$label" "\"nodes\":$n,\"subscribers\":$SUBSCRIBERS,\"rate\":$rate,\"window\":$window" \
            "$(tail -3 "$LOGS/client.err")"
    fi
    # Let the nodes see every close before the next cell.
    sleep 1
}

for rep in $(seq "$REPEAT"); do
    for n in $NODES; do
        for kind in duplex socket.io; do
            labels=()
            for label in $SERVERS; do
                case $label in
                duplex-*) [[ $kind == duplex ]] && labels+=("$label") ;;
                *) [[ $kind == "$label" ]] && labels+=("$label") ;;
                esac
            done
            ((${#labels[@]})) || continue
            start_nodes "$kind" "$n"
            for load in $LOADS; do
                for label in "${labels[@]}"; do
                    cell "$label" "$n" "$load" "$rep"
                done
            done
            stop_nodes
        done
    done
done

meta "$(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN/duplex-bench" cluster-report "$RESULTS" | tee "${RESULTS%.jsonl}.md"
log "results: $RESULTS"
