# shellcheck shell=bash
# What the runners bench/run-*.sh share; each sources it right after
# `set -euo pipefail`. It owns the run's plumbing: the working directory,
# logging, the file-descriptor limit, private copies of the binaries, the
# results files, the facts that describe a run, server processes pinned to
# SERVER_CORE, the client pinned to CLIENT_CORE, failure lines, and the
# clean-up on exit. What to measure, and how to start each server
# (`server_cmd`), stays in the runner.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

RUNNER=$(basename "$0" .sh)
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
# Short errors from the client, not anyhow backtraces.
export RUST_LIB_BACKTRACE=0

log() { printf '[%s] %s\n' "$RUNNER" "$*" >&2; }

# Thousands of connections need as many descriptors on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The largest number among the runner's connection counts ($@: lists
# separated by spaces or commas).
largest() { tr ', ' '\n\n' <<<"$*" | grep . | sort -n | tail -1; }

# True when this process may not open $1 more files than it has spare.
few_files() {
    [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $1 ]]
}

# Copies the binaries a run uses into BIN, a private directory, so that a
# rebuild elsewhere in the tree cannot swap one in the middle of the run.
BIN=""
private_copies() {
    BIN=$(mktemp -d)
    cp "$@" "$BIN/"
}

# Starts the results of a run of kind $1: sets TS, RESULTS (the JSON
# lines) and LOGS (server and client output).
open_results() {
    TS=$(date -u +%Y%m%dT%H%M%SZ)
    mkdir -p "$ROOT/bench/results"
    RESULTS=$ROOT/bench/results/$1-$TS.jsonl
    LOGS=$ROOT/bench/results/$1-$TS-logs
    mkdir -p "$LOGS"
    : >"$RESULTS"
}

# Facts for a run's "meta" line.
cpu_model() { sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1 | tr -d '\042\134'; }
crate_version() { awk -v n="$1" '$0=="name = \""n"\"" {getline; gsub(/[^0-9.]/,""); print; exit}' "$ROOT/bench/peers/Cargo.lock"; }
node_pkg_version() { node -p "require('$ROOT/bench/node-socketio/node_modules/$1/package.json').version"; }
# What the binaries were built from: HEAD, +dirty for uncommitted changes
# outside the bench crate, +prebuilt when SKIP_BUILD=1 took binaries built
# earlier.
git_desc() {
    local desc
    desc="$(git rev-parse --short HEAD 2>/dev/null || echo none)"
    git diff --quiet HEAD -- crates ':!crates/bench' 2>/dev/null || desc+="+dirty"
    [[ ${SKIP_BUILD:-0} == 1 ]] && desc+="+prebuilt"
    echo "$desc"
}

# Prints the first $4://127.0.0.1:PORT URL that process $2 (called $1)
# writes to its log $3, waiting up to 10 s; fails, showing the log, if the
# process exits or prints none.
listening_url() {
    local name=$1 pid=$2 logfile=$3 scheme=$4 url=""
    for _ in $(seq 100); do
        url=$(grep -so "$scheme://127\.0\.0\.1:[0-9]*" "$logfile" | head -1 || true)
        [[ -n $url ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $url ]]; then
        log "$name did not start; its log:"
        cat "$logfile" >&2
        return 1
    fi
    echo "$url"
}

# Server processes by name, and the base URL each printed once it listened.
declare -A PID URL
STARTS=0

# Starts server $1 (the command `server_cmd $1` prints, with the address
# 127.0.0.1:0 appended) pinned to SERVER_CORE, and waits until its log
# shows a URL with scheme $2 (default http). Sets PID[$1] and URL[$1].
start_server() {
    local name=$1 scheme=${2:-http} cmd=() logfile url pid
    read -r -a cmd <<<"$(server_cmd "$name")"
    STARTS=$((STARTS + 1))
    logfile=$LOGS/$name-$STARTS.log
    # Port 0: the kernel picks a free port and the server prints it, so the
    # benchmark never collides with anything else on the machine.
    taskset -c "$SERVER_CORE" "${cmd[@]}" 127.0.0.1:0 >"$logfile" 2>&1 &
    pid=$!
    PID[$name]=$pid
    url=$(listening_url "$name" "$pid" "$logfile" "$scheme") || return 1
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

# Starts server $1 if it is not running (again, if it died); $2 as for
# start_server.
ensure_running() {
    if [[ -z ${PID[$1]:-} ]] || ! kill -0 "${PID[$1]}" 2>/dev/null; then
        [[ -n ${PID[$1]:-} ]] && log "$1 died; restarting it"
        stop_server "$1"
        start_server "$@"
    fi
}

# Waits (at most 10 s) until server $1 stops using CPU, e.g. after the
# previous cell's connections closed, so that its clean-up does not run on
# the server core during the next cell.
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

# Runs duplex-bench pinned to CLIENT_CORE, stdout to $1, stderr to $2, the
# runner's CLIENT_ARGS and then the rest as its arguments. In the background with a wait, so that an
# interrupt is handled at once (bash runs traps only between foreground
# commands, but does interrupt a wait).
CLIENT_PID=""
CLIENT_ARGS=()
client() {
    local out=$1 err=$2 rc=0
    shift 2
    taskset -c "$CLIENT_CORE" "$BIN/duplex-bench" "${CLIENT_ARGS[@]}" "$@" >"$out" 2>"$err" &
    CLIENT_PID=$!
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=""
    return "$rc"
}

# Appends the line of a failed measurement to RESULTS: $1 scenario, $2
# server, $3 the cell's JSON fields (`"sockets":100,...`), $4 the message.
record_failure() {
    local msg
    msg=$(tr -d '\042\134' <<<"$4" | tr '\n' ' ' | cut -c1-300)
    printf '{"scenario":"%s","server":"%s",%s,"error":"%s"}\n' "$1" "$2" "$3" "$msg" >>"$RESULTS"
}

# On exit: stop the client and every server (and whatever the runner's
# optional `cleanup_more` stops), and remove the private copies.
cleanup() {
    local name
    if [[ -n $CLIENT_PID ]]; then
        kill "$CLIENT_PID" 2>/dev/null || true
        wait "$CLIENT_PID" 2>/dev/null || true
    fi
    for name in "${!PID[@]}"; do
        stop_server "$name"
    done
    if declare -F cleanup_more >/dev/null; then cleanup_more; fi
    if [[ -n $BIN ]]; then rm -rf "$BIN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
