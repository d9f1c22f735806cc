#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit/integration/doc
# tests, and the Autobahn conformance run against our server and our client.
# Installs what it needs (the Autobahn testsuite in a Python 2.7 virtualenv).
#
#   scripts/test-all.sh            everything
#   SKIP_AUTOBAHN=1 scripts/test-all.sh   Rust tests only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

if [ "${SKIP_AUTOBAHN:-0}" != 1 ]; then
    step "build the Autobahn testees (release)"
    cargo build --release --locked -p duplex-ws --example echo_server --example echo_client
    step "Autobahn: our server (fuzzingclient), CI case set"
    export AUTOBAHN_SERVER_PORT="${AUTOBAHN_SERVER_PORT:-9001}" AUTOBAHN_CLIENT_PORT="${AUTOBAHN_CLIENT_PORT:-9002}"
    AUTOBAHN_SERVER_CMD="$PWD/target/release/examples/echo_server 127.0.0.1:$AUTOBAHN_SERVER_PORT" \
        e2e/autobahn/run.sh server
    step "Autobahn: our client (fuzzingserver), CI case set"
    AUTOBAHN_CLIENT_CMD="$PWD/target/release/examples/echo_client ws://127.0.0.1:$AUTOBAHN_CLIENT_PORT duplex" \
        e2e/autobahn/run.sh client
fi
step "all suites passed"
