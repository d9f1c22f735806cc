#!/usr/bin/env bash
# Installs the Autobahn testsuite (`wstest`, Python 2.7 only) into
# e2e/autobahn/.venv. Idempotent: does nothing when .venv/bin/wstest already
# works and was installed from the current requirements files.
#
# Needs: a Python 2.7 interpreter (pyenv's 2.7.18, `python2.7` on PATH, or
# AUTOBAHN_PYTHON2=/path/to/python2.7), python3 with pip, and access to PyPI.
set -euo pipefail

# Everything is inside main(), so bash parses the whole file before running it.
main() {
    HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    VENV="$HERE/.venv"
    REQ="$HERE/requirements.txt"
    REQ_ACCEL="$HERE/requirements-accelerate.txt"
    MARKER="$VENV/.duplex-requirements"

    t0=$(date +%s%N)
    elapsed() { echo "$(( ($(date +%s%N) - t0) / 1000000 ))" | awk '{ printf "%.1fs", $1 / 1000 }'; }
    log() { echo "[autobahn install] $*"; }
    die() { echo "[autobahn install] ERROR: $*" >&2; exit 1; }

    wanted_marker() { cat "$REQ" "$REQ_ACCEL" | sha256sum | cut -d' ' -f1; }

    wstest_works() {
        [ -x "$VENV/bin/wstest" ] && "$VENV/bin/wstest" --help >/dev/null 2>&1
    }

    if wstest_works && [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$(wanted_marker)" ]; then
        log "wstest already installed in $VENV ($(elapsed))"
        exit 0
    fi

    # --- find Python 2.7 --------------------------------------------------------
    find_python2() {
        local cand
        if [ -n "${AUTOBAHN_PYTHON2:-}" ]; then
            echo "$AUTOBAHN_PYTHON2"; return 0
        fi
        if command -v pyenv >/dev/null 2>&1; then
            local root
            root="$(pyenv root 2>/dev/null || true)"
            if [ -n "$root" ]; then
                for cand in "$root/versions/2.7.18/bin/python2.7" "$root"/versions/2.7*/bin/python2.7; do
                    [ -x "$cand" ] && { echo "$cand"; return 0; }
                done
            fi
        fi
        for cand in "${PYENV_ROOT:-$HOME/.pyenv}/versions/2.7.18/bin/python2.7" \
                    "$(command -v python2.7 2>/dev/null || true)"; do
            [ -n "$cand" ] && [ -x "$cand" ] && { echo "$cand"; return 0; }
        done
        return 1
    }

    PY2="$(find_python2)" || die "no Python 2.7 found. The Autobahn testsuite runs only on Python 2.7.
  Debian bookworm has no python2.7 package; install one with pyenv
  (pyenv install 2.7.18) or point AUTOBAHN_PYTHON2 at a python2.7 binary."
    "$PY2" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null \
        || die "$PY2 is not a working Python 2.7 interpreter"
    log "using Python 2.7 at $PY2"

    PY3="$(command -v python3 2>/dev/null)" || die "python3 not found (needed to run virtualenv)"

    # --- create the virtualenv ----------------------------------------------------
    # virtualenv < 20.22 is the last line that creates Python 2.7 environments (and
    # seeds pip 20.3.4, which still runs on 2.7). It is installed into a throwaway
    # directory so the machine's python3 is left untouched.
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT

    log "installing virtualenv<20.22 into a temporary directory"
    "$PY3" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        --target "$TMP/virtualenv" 'virtualenv<20.22' \
        || die "could not install virtualenv<20.22 with $PY3 -m pip"

    rm -rf "$VENV"
    log "creating $VENV"
    PYTHONPATH="$TMP/virtualenv" "$PY3" -m virtualenv --quiet --python "$PY2" "$VENV" \
        || die "virtualenv failed to create a Python 2.7 environment"

    PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-python-version-warning)

    log "installing pinned packages ($(elapsed) so far)"
    "${PIP[@]}" install --quiet -r "$REQ" || die "pip install -r requirements.txt failed"

    log "installing optional speed-ups (wsaccel, ujson)"
    if ! "${PIP[@]}" install --quiet -r "$REQ_ACCEL"; then
        log "WARNING: wsaccel/ujson failed to build; continuing without them (slower UTF-8 validation)"
    fi

    "${PIP[@]}" check >/dev/null || { "${PIP[@]}" check; die "pip check reports broken requirements"; }
    wstest_works || die "wstest was installed but does not run"

    wanted_marker > "$MARKER"
    log "done: $("$VENV/bin/python" -c 'import autobahntestsuite, autobahn; print("autobahntestsuite %s, autobahn %s" % (autobahntestsuite.__version__, autobahn.__version__))') in $(elapsed)"
}

main "$@"
