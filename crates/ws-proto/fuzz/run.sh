#!/usr/bin/env bash
# Runs every fuzz target of duplex-ws-proto for a while and reports; kept for
# old habits, the project-wide runner is scripts/fuzz.sh.
#
# Usage: crates/ws-proto/fuzz/run.sh [SECONDS]   (default 60 per target)
exec "$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/scripts/fuzz.sh" "${1:-60}" ws-proto
