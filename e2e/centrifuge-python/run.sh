#!/usr/bin/env bash
# Runs the end-to-end tests of /connection/websocket with the official
# centrifuge-python SDK: installs it into e2e/centrifuge-python/.venv (again
# whenever requirements.txt changes), builds the server, and runs pytest,
# which starts one `duplex serve` on a free port for the session.
# Exits with pytest's status.
#
# Extra arguments go to pytest, e.g. `run.sh -k recovery`.
# Environment (optional):
#   DUPLEX_BIN   server binary to test (default: target/debug/duplex, built here)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

VENV="$HERE/.venv"
STAMP="$VENV/.requirements.sha256"
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
    echo "$want" > "$STAMP"
fi

if [ -z "${DUPLEX_BIN:-}" ]; then
    (cd ../.. && cargo build --locked -p duplex-server)
fi

: > server.log
status=0
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@" || status=$?
exit "$status"
