#!/usr/bin/env bash
# Runs the Autobahn testsuite (RFC 6455 conformance) against duplex.
#
#   run.sh server [CASES] [--full]   wstest (fuzzingclient) tests OUR server
#   run.sh client [CASES] [--full]   OUR client is tested by wstest (fuzzingserver)
#
# CASES: comma-separated wstest case patterns, e.g. "1.*,2.*,7.1.6,12.1.*".
#        Default: the CI set (sections 1-10 in full, a sample of 12 and 13).
# --full (or AUTOBAHN_FULL=1): every case ("*").
#
# Environment (all optional):
#   AUTOBAHN_SERVER_CMD  server under test, run from this directory with
#                        `bash -c`; must listen on 127.0.0.1:$AUTOBAHN_SERVER_PORT.
#                        Default: cargo run --release -p duplex-ws --example echo_server -- 127.0.0.1:PORT
#   AUTOBAHN_CLIENT_CMD  client under test, run from this directory with `bash -c`;
#                        it gets $AUTOBAHN_URL and $AUTOBAHN_AGENT in its environment.
#                        Default: cargo run --release -p duplex-ws --example echo_client -- ws://127.0.0.1:PORT duplex
#   AUTOBAHN_SERVER_PORT (9001)   AUTOBAHN_CLIENT_PORT (9002)
#   AUTOBAHN_AGENT       agent name in the reports (duplex)
#   AUTOBAHN_REPORTS_DIR reports go to $AUTOBAHN_REPORTS_DIR/<mode> (./reports)
#   AUTOBAHN_TIMEOUT     seconds allowed for the test run (600; 3600 with --full)
#   AUTOBAHN_STARTUP_TIMEOUT  seconds to wait for a port to open (120)
#   AUTOBAHN_VERBOSE=1   stream wstest's and the testee's output instead of
#                        only writing it to reports/<mode>/*.log
# The commands can use $WSTEST: wstest from .venv, bound to 127.0.0.1 only.
#
# Exit status: that of summarise.py (0 = no failing case), or 1 when the
# testee misbehaved (crashed, never opened its port, timed out, ...).
set -euo pipefail

# Everything is inside main(), so bash parses the whole file before running
# any of it: editing this script during a run cannot derail that run.
main() {
    HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    cd "$HERE"

    HOST=127.0.0.1
    SERVER_PORT="${AUTOBAHN_SERVER_PORT:-9001}"
    CLIENT_PORT="${AUTOBAHN_CLIENT_PORT:-9002}"
    AGENT="${AUTOBAHN_AGENT:-duplex}"
    STARTUP_TIMEOUT="${AUTOBAHN_STARTUP_TIMEOUT:-120}"
    VERBOSE="${AUTOBAHN_VERBOSE:-0}"
    FULL="${AUTOBAHN_FULL:-0}"

    # CI set: sections 1-10 in full, and for compression (permessage-deflate)
    # sizes 16 B - 4 KiB plus one auto-fragmented case for each of the five
    # payload kinds of section 12, and sizes 16 B - 1 KiB plus one fragmented
    # case for each of the seven parameter negotiations of section 13.
    ci_cases() {
        local s j i out=()
        for s in 1 2 3 4 5 6 7 8 9 10; do out+=("$s.*"); done
        for j in 1 2 3 4 5; do for i in 1 2 3 4 5 11; do out+=("12.$j.$i"); done; done
        for j in 1 2 3 4 5 6 7; do for i in 1 2 3 4 11; do out+=("13.$j.$i"); done; done
        local IFS=,
        echo "${out[*]}"
    }

    usage() { sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
    log() { echo "[autobahn] $*"; }
    die() { echo "[autobahn] ERROR: $*" >&2; exit 1; }

    MODE=""
    CASES=""
    for arg in "$@"; do
        case "$arg" in
            --full) FULL=1 ;;
            -h|--help) usage; exit 0 ;;
            -*) usage >&2; die "unknown option $arg" ;;
            *)
                if [ -z "$MODE" ]; then MODE="$arg"
                elif [ -z "$CASES" ]; then CASES="$arg"
                else usage >&2; die "too many arguments"; fi ;;
        esac
    done
    case "$MODE" in
        server|client) ;;
        "") usage >&2; die "missing MODE (server or client)" ;;
        *) usage >&2; die "MODE must be server or client, not '$MODE'" ;;
    esac
    if [ "$FULL" = 1 ]; then
        [ -n "$CASES" ] && log "--full given: ignoring CASES '$CASES'"
        CASES="*"
        RUN_TIMEOUT="${AUTOBAHN_TIMEOUT:-3600}"
    else
        CASES="${CASES:-$(ci_cases)}"
        RUN_TIMEOUT="${AUTOBAHN_TIMEOUT:-600}"
    fi

    T0=$(date +%s%N)
    elapsed() { awk -v ns="$(( $(date +%s%N) - T0 ))" 'BEGIN { printf "%.1fs", ns / 1e9 }'; }

    # --- everything started here is killed on exit --------------------------------
    PIDS=()
    stop_pid() {
        # Each background process is started with setsid (or under `timeout`), so
        # its pid is also its process group: signal the group, so that children
        # (e.g. a server under `cargo run`) go too, even if the leader is gone.
        local pid="$1" i
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do
            kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    }
    cleanup() {
        local pid
        for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
        PIDS=()
    }
    trap cleanup EXIT
    trap 'cleanup; exit 130' INT
    trap 'cleanup; exit 143' TERM

    # start_bg LOGFILE COMMAND...: start in its own process group, remember its pid.
    start_bg() {
        local logfile="$1"; shift
        if [ "$VERBOSE" = 1 ]; then
            setsid "$@" > >(tee "$logfile") 2>&1 &
        else
            setsid "$@" >"$logfile" 2>&1 &
        fi
        BG_PID=$!
        PIDS+=("$BG_PID")
    }

    port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

    # wait_port PORT PID WHAT LOGFILE
    wait_port() {
        local port="$1" pid="$2" what="$3" logfile="$4" deadline=$(( SECONDS + STARTUP_TIMEOUT ))
        until port_open "$port"; do
            if ! kill -0 "$pid" 2>/dev/null; then
                tail -n 30 "$logfile" >&2 || true
                die "$what exited before listening on $HOST:$port (log: $logfile)"
            fi
            if (( SECONDS >= deadline )); then
                tail -n 30 "$logfile" >&2 || true
                die "$what did not listen on $HOST:$port within ${STARTUP_TIMEOUT}s (log: $logfile)"
            fi
            sleep 0.2
        done
    }

    # run_timed LOGFILE COMMAND...: run in the foreground with AUTOBAHN_TIMEOUT;
    # sets RUN_RC and TIMED_OUT. `timeout` puts the command in its own process
    # group and signals that group, so children are covered too.
    run_timed() {
        local logfile="$1"; shift
        if [ "$VERBOSE" = 1 ]; then
            timeout --kill-after=10 "$RUN_TIMEOUT" "$@" > >(tee "$logfile") 2>&1 &
        else
            timeout --kill-after=10 "$RUN_TIMEOUT" "$@" >"$logfile" 2>&1 &
        fi
        local pid=$! started=$SECONDS
        PIDS+=("$pid")
        RUN_RC=0
        wait "$pid" || RUN_RC=$?
        TIMED_OUT=0
        if [ "$RUN_RC" = 124 ] && (( SECONDS - started >= RUN_TIMEOUT )); then TIMED_OUT=1; fi
    }

    # --- setup ----------------------------------------------------------------------
    "$HERE/install.sh"
    PY2="$HERE/.venv/bin/python"
    WSTEST_CMD=("$PY2" "$HERE/wstest_loopback.py")
    # For AUTOBAHN_*_CMD strings (they run under `bash -c`).
    WSTEST="$(printf '%q ' "${WSTEST_CMD[@]}")"
    export WSTEST
    export AUTOBAHN_BIND_HOST="$HOST"

    REPORTS_DIR="${AUTOBAHN_REPORTS_DIR:-$HERE/reports}"
    mkdir -p "$REPORTS_DIR"
    REPORTS_DIR="$(cd "$REPORTS_DIR" && pwd)"
    OUTDIR="$REPORTS_DIR/$MODE"
    # Two runs of the same mode must not share (and wipe) one report directory.
    exec 9>"$REPORTS_DIR/.$MODE.lock"
    flock -n 9 || die "another run.sh $MODE is using $OUTDIR; wait for it or set AUTOBAHN_REPORTS_DIR"
    rm -rf "$OUTDIR"
    mkdir -p "$OUTDIR"
    SPEC="$OUTDIR/spec.json"
    TESTEE_LOG="$OUTDIR/testee.log"
    WSTEST_LOG="$OUTDIR/wstest.log"

    if [ "$MODE" = server ]; then
        PORT="$SERVER_PORT"
        URL="ws://$HOST:$PORT"
    else
        PORT="$CLIENT_PORT"
        URL="ws://$HOST:$PORT"
    fi
    export AUTOBAHN_URL="$URL" AUTOBAHN_AGENT="$AGENT"

    EXPECTED="$("$PY2" "$HERE/make_spec.py" "$MODE" "$URL" "$OUTDIR" "$AGENT" "$CASES" "$SPEC")" \
        || die "could not build the wstest spec for cases '$CASES'"
    if [ "$CASES" = "$(ci_cases)" ]; then SHOWN="CI set: 1.* - 10.*, sample of 12.* and 13.*"; else SHOWN="$CASES"; fi
    log "mode=$MODE cases='$SHOWN' ($EXPECTED cases, spec $SPEC) agent=$AGENT url=$URL"

    port_open "$PORT" && die "$HOST:$PORT is already in use; set AUTOBAHN_${MODE^^}_PORT"

    # Build the default testee up front, so the port wait does not include compiling.
    if [ "$MODE" = server ] && [ -z "${AUTOBAHN_SERVER_CMD:-}" ]; then
        log "building echo_server example"
        cargo build --release -p duplex-ws --example echo_server || die "cargo build --example echo_server failed"
        TESTEE_CMD="cargo run --quiet --release -p duplex-ws --example echo_server -- $HOST:$PORT"
    elif [ "$MODE" = server ]; then
        TESTEE_CMD="$AUTOBAHN_SERVER_CMD"
    elif [ -z "${AUTOBAHN_CLIENT_CMD:-}" ]; then
        log "building echo_client example"
        cargo build --release -p duplex-ws --example echo_client || die "cargo build --example echo_client failed"
        TESTEE_CMD="cargo run --quiet --release -p duplex-ws --example echo_client -- $URL $AGENT"
    else
        TESTEE_CMD="$AUTOBAHN_CLIENT_CMD"
    fi

    FAILED_RUN=0
    T_RUN=$(date +%s%N)

    if [ "$MODE" = server ]; then
        log "starting server under test: $TESTEE_CMD"
        start_bg "$TESTEE_LOG" bash -c "$TESTEE_CMD"
        SERVER_PID=$BG_PID
        wait_port "$PORT" "$SERVER_PID" "server under test" "$TESTEE_LOG"

        log "running wstest -m fuzzingclient (log: $WSTEST_LOG)"
        run_timed "$WSTEST_LOG" "${WSTEST_CMD[@]}" -m fuzzingclient -s "$SPEC"
        if [ "$TIMED_OUT" = 1 ]; then
            log "FAILURE: wstest did not finish within ${RUN_TIMEOUT}s"; FAILED_RUN=1
        elif [ "$RUN_RC" != 0 ]; then
            tail -n 30 "$WSTEST_LOG" >&2 || true
            log "FAILURE: wstest exited with status $RUN_RC"; FAILED_RUN=1
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -n 30 "$TESTEE_LOG" >&2 || true
            log "FAILURE: the server under test exited during the run (log: $TESTEE_LOG)"; FAILED_RUN=1
        fi
    else
        log "starting wstest -m fuzzingserver (log: $WSTEST_LOG)"
        start_bg "$WSTEST_LOG" "${WSTEST_CMD[@]}" -m fuzzingserver -u 0 -s "$SPEC"
        FUZZ_PID=$BG_PID
        wait_port "$PORT" "$FUZZ_PID" "wstest fuzzingserver" "$WSTEST_LOG"

        log "running client under test: $TESTEE_CMD (log: $TESTEE_LOG)"
        run_timed "$TESTEE_LOG" bash -c "$TESTEE_CMD"
        if [ "$TIMED_OUT" = 1 ]; then
            log "FAILURE: the client under test did not finish within ${RUN_TIMEOUT}s"; FAILED_RUN=1
        elif [ "$RUN_RC" != 0 ]; then
            tail -n 30 "$TESTEE_LOG" >&2 || true
            log "FAILURE: the client under test exited with status $RUN_RC"; FAILED_RUN=1
        fi
        if ! kill -0 "$FUZZ_PID" 2>/dev/null; then
            tail -n 30 "$WSTEST_LOG" >&2 || true
            log "FAILURE: wstest fuzzingserver exited during the run"; FAILED_RUN=1
        elif [ ! -f "$OUTDIR/index.json" ]; then
            log "FAILURE: the client never opened /updateReports?agent=$AGENT; asking for the reports itself"
            FAILED_RUN=1
            python3 "$HERE/update_reports.py" "$URL" "$AGENT" || log "could not get the reports written"
        fi
    fi
    log "test run took $(awk -v ns="$(( $(date +%s%N) - T_RUN ))" 'BEGIN { printf "%.1fs", ns / 1e9 }')"

    cleanup

    SUMMARY_RC=0
    python3 "$HERE/summarise.py" "$OUTDIR" --expected "$EXPECTED" --agent "$AGENT" || SUMMARY_RC=$?
    log "reports: $OUTDIR/index.html (total $(elapsed))"

    if [ "$SUMMARY_RC" = 0 ] && [ "$FAILED_RUN" = 1 ]; then
        exit 1
    fi
    exit "$SUMMARY_RC"
}

main "$@"
