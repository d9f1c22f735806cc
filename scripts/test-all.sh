#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit/integration/doc
# tests, end-to-end tests with the official Socket.IO clients (Node and
# Python), and the Autobahn conformance run against our server and our client.
# Installs what it needs (npm and pip packages; the Autobahn testsuite in a
# Python 2.7 virtualenv).
#
#   scripts/test-all.sh                    everything
#   SKIP_AUTOBAHN=1 scripts/test-all.sh    without the Autobahn runs
#   SKIP_BROWSER=1 scripts/test-all.sh     without the chromium test
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Redis on 127.0.0.1:6379 (hub-redis tests)"
scripts/ensure-redis.sh

step "cargo test"
cargo test --workspace --locked

step "the duplex binary for the end-to-end suites"
cargo build -p duplex-server --locked
export DUPLEX_BIN="$PWD/target/debug/duplex"

step "duplex end to end: centrifuge-js 5 (Node, ws)"
e2e/centrifuge-js/run.sh

step "duplex end to end: centrifuge-python"
e2e/centrifuge-python/run.sh

step "duplex end to end: official socket.io-client 4.8 on the Socket.IO mapping"
e2e/socketio-duplex/run.sh

step "Socket.IO across nodes: socket.io-client 4.8 against two nodes sharing Redis"
e2e/socketio-cluster/run.sh

step "duplex.js unit tests (node --test)"
e2e/duplexjs/run.sh

if [ "${SKIP_BROWSER:-0}" != 1 ]; then
    step "browser: the demo page in Debian's chromium, driven by Playwright"
    e2e/browser/run.sh
fi

step "Socket.IO end to end: official socket.io-client (Node)"
e2e/node/run.sh

step "Socket.IO end to end: official python-socketio client"
e2e/python/run.sh

if [ "${SKIP_AUTOBAHN:-0}" != 1 ]; then
    step "Autobahn: our server (fuzzingclient mode), CI case set"
    e2e/autobahn/run.sh server
    step "Autobahn: our client (fuzzingserver mode), CI case set"
    e2e/autobahn/run.sh client
fi
step "all suites passed"
