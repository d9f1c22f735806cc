#!/usr/bin/env bash
# Runs the Node end-to-end tests: installs the official clients (npm ci),
# builds the Rust e2e server, and runs node's test runner.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -d node_modules/socket.io-client ]; then
    npm ci --no-audit --no-fund
fi
(cd ../.. && cargo build --release --locked -p duplex-socketio --example e2e_server)
node --test --test-concurrency=1
