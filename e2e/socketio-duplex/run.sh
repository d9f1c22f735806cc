#!/usr/bin/env bash
# Runs the end-to-end tests of duplex's Socket.IO mapping (/socket.io/) with
# the official socket.io-client 4.8 on Node, plus a plain WebSocket client
# (`ws`, Centrifugo's JSON protocol) for the cross-transport tests: installs
# the packages (npm ci, package-lock.json), builds the server, and runs
# node's test runner. Each test file starts its own `duplex serve` on a free
# port.
#
# Tests marked TODO are known server bugs: they run and are reported, but do
# not fail the run (remove the `todo` option once the bug is fixed).
#
# Extra arguments go to node --test, e.g. `run.sh --test-name-pattern=history`.
# Environment (optional):
#   DUPLEX_BIN   server binary to test (default: target/debug/duplex, built here)
#   E2E_DEBUG=1  copy the server's log to stderr (it always goes to server.log)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
if [ ! -d node_modules/socket.io-client ] || [ ! -d node_modules/ws ] \
    || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
fi
if [ -z "${DUPLEX_BIN:-}" ]; then
    (cd ../.. && cargo build --locked -p duplex-server)
fi
: > server.log
node --test --test-concurrency=1 "$@" ./*.test.mjs
