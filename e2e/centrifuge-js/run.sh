#!/usr/bin/env bash
# Runs the end-to-end tests of /connection/websocket with the official
# centrifuge-js SDK (5.x, on Node with the `ws` package): installs the SDK
# (npm ci, package-lock.json), builds the server, and runs node's test
# runner. Each test file starts its own `duplex serve` on a free port.
#
# Extra arguments go to node --test, e.g. `run.sh --test-name-pattern=history`.
# Environment (optional):
#   DUPLEX_BIN   server binary to test (default: target/debug/duplex, built here)
#   E2E_DEBUG=1  copy the server's log to stderr (it always goes to server.log)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
if [ ! -d node_modules/centrifuge ] || [ ! -d node_modules/ws ] \
    || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
fi
if [ -z "${DUPLEX_BIN:-}" ]; then
    (cd ../.. && cargo build --locked -p duplex-server)
fi
: > server.log
node --test --test-concurrency=1 "$@" ./*.test.mjs
