#!/usr/bin/env bash
# Runs the cluster end-to-end tests: installs the official client (npm ci),
# builds the example node (crates/socketio-redis/examples/cluster_node.rs)
# and runs node's test runner. Needs Redis on 127.0.0.1:6379 (REDIS_URL).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -d node_modules/socket.io-client ]; then
    npm ci --no-audit --no-fund
fi
(cd ../.. && cargo build --locked -p duplex-socketio-redis --example cluster_node)
node --test --test-concurrency=1
