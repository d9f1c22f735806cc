#!/usr/bin/env bash
# Unit tests of crates/server/assets/duplex.js against a fake WebSocket:
# no server, no dependencies, node's own test runner.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
node --test
