#!/usr/bin/env bash
# Browser end-to-end test of the demo page and duplex.js: Debian's chromium
# driven by playwright-core against a real `duplex serve --dev`.
#
#   e2e/browser/run.sh
#
# Environment:
#   DUPLEX_BIN          server binary to test (default: `cargo build -p duplex-server`,
#                       then target/debug/duplex)
#   DUPLEX_E2E_STORAGE  sqlite (default) or memory (no recovery across the restart:
#                       the test then expects the page to notice and reload history)
#   CHROMIUM            browser binary (default /usr/bin/chromium, installed with apt if missing)
# Screenshots and server logs go to e2e/browser/output/ (gitignored).
set -euo pipefail
if [ -n "${DUPLEX_BIN:-}" ]; then
    DUPLEX_BIN="$(realpath "$DUPLEX_BIN")" # relative to where we were started
fi
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT="$(cd ../.. && pwd)"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$CHROMIUM" ]; then
    echo "run.sh: $CHROMIUM is missing; installing Debian's chromium" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; }; then
        echo "run.sh: could not install chromium with apt-get; install it, or set CHROMIUM to a chromium binary" >&2
        exit 1
    fi
fi

want="$(node -p 'require("./package-lock.json").packages["node_modules/playwright-core"].version')"
have="$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch (e) { "" }')"
if [ "$want" != "$have" ]; then
    npm ci --no-audit --no-fund
fi

if [ -z "${DUPLEX_BIN:-}" ]; then
    (cd "$ROOT" && cargo build -p duplex-server)
    DUPLEX_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/duplex"
fi
export DUPLEX_BIN
mkdir -p output
export DUPLEX_E2E_OUTPUT="$PWD/output"

if ! node --test --test-reporter=spec demo.test.mjs; then
    echo "run.sh: the browser test FAILED (server logs and any screenshots are in $PWD/output)" >&2
    exit 1
fi
echo "run.sh: the browser test passed; screenshots in $PWD/output"
