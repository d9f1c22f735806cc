#!/usr/bin/env bash
# Soak of one duplex server: thousands of churning WebSocket clients
# connecting, subscribing (some recoverable), reconnecting with recovery
# and disconnecting while the server API and churning publishing clients
# publish, for MINUTES minutes
# (default 30); every delivery is checked for loss, duplication and order,
# and the server's RSS, open descriptors and CPU are sampled
# (`duplex-bench soak`, crates/bench/src/soak.rs).
#
#   scripts/soak.sh            # 30 minutes
#   scripts/soak.sh 1          # smoke run
#
# Builds release `duplex` and `duplex-bench` (SKIP_BUILD=1 to use the
# binaries already in target/release), starts `duplex serve` on a free
# loopback port with its own data folder (default SQLite storage, the
# default channel options -- history 100 / 5 min, recovery allowed -- plus
# client publishing, written to a config file there), runs the soak,
# stops the server. Results go to target/soak/<UTC timestamp>/:
# soak.jsonl (`soak-sample` lines and the final `soak` line), report.txt
# (the report in words), server.log. Exits non-zero when the soak failed
# (loss, duplicates, failed recovery, descriptor leak, ...).
#
# Knobs (environment): CLIENTS=2500 CHANNELS=100 RATE=200 (publications/s
# in total) LIFETIME=5-60 OFFLINE=0.2-5 (seconds) RECOVERABLE=0.7
# RECONNECT=0.4 ABRUPT=0.2 SIZE=64 CLIENT_PUBLISHERS=4 (WebSocket clients
# publishing every tenth channel; 0: the API publishes all) WARMUP (seconds; default a sixth of the
# run, at most 300) SAMPLE (seconds between samples) SEED=1
# STORAGE (e.g. memory; default the server's, SQLite) SKIP_BUILD=1.
set -euo pipefail

MINUTES=${1:-30}
if ! [[ $MINUTES =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
    echo "usage: scripts/soak.sh [MINUTES]" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DURATION=$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 }')
CLIENTS=${CLIENTS:-2500}
CHANNELS=${CHANNELS:-100}
RATE=${RATE:-200}
LIFETIME=${LIFETIME:-5-60}
OFFLINE=${OFFLINE:-0.2-5}
RECOVERABLE=${RECOVERABLE:-0.7}
RECONNECT=${RECONNECT:-0.4}
ABRUPT=${ABRUPT:-0.2}
SIZE=${SIZE:-64}
CLIENT_PUBLISHERS=${CLIENT_PUBLISHERS:-4}
SEED=${SEED:-1}
WARMUP=${WARMUP:-$((DURATION / 6 < 300 ? DURATION / 6 : 300))}
SAMPLE=${SAMPLE:-$((DURATION >= 600 ? 10 : 2))}
TABLE=${TABLE:-$((DURATION >= 1800 ? 300 : (DURATION >= 600 ? 60 : 10)))}
API_KEY=soak-api-key
TOKEN_SECRET=soak-token-secret
export RUST_LIB_BACKTRACE=0

log() { printf '[soak] %s\n' "$*" >&2; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $((CLIENTS + 200)) ]]; then
    log "ulimit -n is $(ulimit -n): too low for $CLIENTS clients"
    exit 1
fi

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "building (release)"
    cargo build --release -p duplex-server --bin duplex -p duplex-bench --bin duplex-bench
fi

OUT=$ROOT/target/soak/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT/bin"
# Private copies, so a rebuild elsewhere in the tree cannot swap a binary
# in the middle of the run.
cp target/release/duplex target/release/duplex-bench "$OUT/bin/"
BIN=$OUT/bin

SERVER_PID=""
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

storage=()
[[ -n ${STORAGE:-} ]] && storage=(--storage "$STORAGE")
# The server's default channel options, plus publishing by clients.
cat >"$OUT/duplex.toml" <<'EOF_TOML'
[channel]
presence = true
join_leave = true
history_size = 100
history_ttl = "5m"
allow_recovery = true
allow_positioning = true
allow_subscribe_for_client = true
allow_presence_for_subscriber = true
allow_history_for_subscriber = true
allow_publish_for_client = true
EOF_TOML
"$BIN/duplex" serve --config "$OUT/duplex.toml" --listen 127.0.0.1:0 --data-dir "$OUT/data" "${storage[@]}" \
    --api-key "$API_KEY" --token-secret "$TOKEN_SECRET" \
    --log-level warn,duplex_server::run=info >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
url=""
for _ in $(seq 100); do
    url=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$OUT/server.log" | head -1 || true)
    [[ -n $url ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $url ]]; then
    log "the server did not start; its log:"
    cat "$OUT/server.log" >&2
    exit 1
fi
hostport=${url#http://}
log "server pid $SERVER_PID at $url (data in $OUT/data); $MINUTES min, $CLIENTS clients, $CHANNELS channels, $RATE/s"
{
    echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- crates 2>/dev/null || echo +dirty)"
    echo "started $(date -u +%FT%TZ), $MINUTES min, CLIENTS=$CLIENTS CHANNELS=$CHANNELS RATE=$RATE LIFETIME=$LIFETIME OFFLINE=$OFFLINE RECOVERABLE=$RECOVERABLE RECONNECT=$RECONNECT ABRUPT=$ABRUPT SIZE=$SIZE CLIENT_PUBLISHERS=$CLIENT_PUBLISHERS WARMUP=$WARMUP SAMPLE=$SAMPLE SEED=$SEED STORAGE=${STORAGE:-sqlite}"
    echo "$(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/report.txt"

rc=0
timeout $((DURATION + 600)) "$BIN/duplex-bench" soak \
    --url "ws://$hostport/connection/websocket" --api-url "http://$hostport" \
    --api-key "$API_KEY" --token-secret "$TOKEN_SECRET" --server-pid "$SERVER_PID" \
    --clients "$CLIENTS" --channels "$CHANNELS" --rate "$RATE" --size "$SIZE" \
    --duration "$DURATION" --warmup "$WARMUP" --lifetime "$LIFETIME" --offline "$OFFLINE" \
    --recoverable "$RECOVERABLE" --reconnect "$RECONNECT" --abrupt "$ABRUPT" \
    --client-publishers "$CLIENT_PUBLISHERS" \
    --sample-every "$SAMPLE" --table-every "$TABLE" --seed "$SEED" --label duplex \
    >"$OUT/soak.jsonl" 2> >(tee -a "$OUT/report.txt" >&2) || rc=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "the server died during the soak"
    rc=1
fi
kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
if grep -q -i 'panick' "$OUT/server.log"; then
    log "the server log holds a panic"
    rc=1
fi
{
    echo "data folder after the run: $(du -sk "$OUT/data" | cut -f1) KiB ($(ls "$OUT/data" | tr '\n' ' '))"
    echo "server log: $(wc -l <"$OUT/server.log") lines, $(grep -c -i ' warn\| error' "$OUT/server.log" || true) warnings/errors"
    echo "exit status $rc"
} | tee -a "$OUT/report.txt" >&2
ln -sfn "$(basename "$OUT")" "$ROOT/target/soak/latest"
log "results in $OUT"
exit "$rc"
