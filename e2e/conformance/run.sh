#!/usr/bin/env bash
# Runs the official protocol test suites (the `test-suite` folders of the
# socketio/engine.io-protocol and socketio/socket.io-protocol repositories)
# against our conformance server. The suites are not part of this repository:
# point EIO_SUITE and SIO_SUITE at checkouts of those folders.
#
#   EIO_SUITE=/path/engine.io-protocol/test-suite \
#   SIO_SUITE=/path/socket.io-protocol/test-suite e2e/conformance/run.sh
#
# Each suite expects the server on localhost:3000; if yours resolves
# localhost to ::1 first, change the suite's URL to 127.0.0.1:3000.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
: "${EIO_SUITE:?set EIO_SUITE to the engine.io-protocol test-suite folder}"
: "${SIO_SUITE:?set SIO_SUITE to the socket.io-protocol test-suite folder}"
cargo build --release --locked -p duplex-socketio --example socketio_conformance
target/release/examples/socketio_conformance &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 0.5
status=0
for suite in "$EIO_SUITE" "$SIO_SUITE"; do
    (cd "$suite" && { [ -d node_modules ] || npm install --no-audit --no-fund; } && npx mocha test-suite.js) || status=1
done
exit $status
