#!/usr/bin/env bash
# Runs the Python end-to-end tests: installs the official python-socketio
# client into e2e/python/.venv (again whenever requirements.txt changes),
# builds the Rust e2e server, and runs pytest. Exits with pytest's status.
#
# Extra arguments go to pytest, e.g. `run.sh -k binary`.
# Environment (optional):
#   DUPLEX_E2E_SERVER  server binary to test (default: the e2e_server example)
#   E2E_DEBUG=1        packet-level logs of the client (logger, engineio_logger)
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

(cd ../.. && cargo build --release --locked -p duplex-socketio --example e2e_server)

status=0
"$VENV/bin/python" -m pytest -q "$@" || status=$?
exit "$status"
