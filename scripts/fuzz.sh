#!/usr/bin/env bash
# Runs the project's cargo-fuzz targets for a while each and reports.
#
# Usage: scripts/fuzz.sh [SECONDS] [CRATE...]
#   SECONDS  per target (default 60)
#   CRATE    folder names under crates/ whose fuzz/ targets to run
#            (default: every crates/*/fuzz), e.g. `scripts/fuzz.sh 600 ws-proto`
# Environment:
#   FUZZ_SANITIZER=address|none   (default address)
#   FUZZ_TARGETS="a b"            run only these target names
#   FUZZ_JOBS_CORE=N              pin every fuzzer to CPU core N (taskset)
#
# Works on the stable toolchain: cargo-fuzz passes nightly-only flags
# (-Zsanitizer=address, -Cpasses=sancov-module ...) to rustc, and
# RUSTC_BOOTSTRAP=1 lets a stable rustc accept them. The stable toolchain
# ships the AddressSanitizer runtime, so the default build is an optimised
# one with debug assertions, overflow checks and ASan.
#
# Installs cargo-fuzz (cargo install cargo-fuzz --locked) when it is
# missing. Each target starts from its committed seeds in
# crates/<crate>/fuzz/corpus/<target>/ (read only) and keeps what it learns
# in crates/<crate>/fuzz/target/corpus/<target>/ (ignored by git, reused by
# the next run). Crashing inputs land in crates/<crate>/fuzz/artifacts/;
# reproduce one from crates/<crate> with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/crash-...
#
# Each target's summary line is also appended to target/fuzz-summary.txt
# (with the date), so a long run leaves its figures behind.
#
# Exit status: 0 when no target crashed, 1 when one did, 2 on setup errors.

set -uo pipefail

SECONDS_PER_TARGET="${1:-60}"
shift || true
SANITIZER="${FUZZ_SANITIZER:-address}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUMMARY_FILE="$ROOT/target/fuzz-summary.txt"
export RUSTC_BOOTSTRAP=1

if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -eq 0 ]; then
    echo "usage: $0 [SECONDS] [CRATE...]  (a positive whole number of seconds per target)" >&2
    exit 2
fi

if [ "$#" -gt 0 ]; then
    CRATES=("$@")
else
    mapfile -t CRATES < <(cd "$ROOT/crates" && for d in */fuzz; do echo "${d%/fuzz}"; done)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked || { echo "cargo-fuzz install failed" >&2; exit 2; }
fi

PIN=()
if [ -n "${FUZZ_JOBS_CORE:-}" ]; then
    PIN=(taskset -c "$FUZZ_JOBS_CORE")
fi

mkdir -p "$ROOT/target"
crashed=0
summary=()
for crate in "${CRATES[@]}"; do
    crate_dir="$ROOT/crates/$crate"
    fuzz_dir="$crate_dir/fuzz"
    if [ ! -f "$fuzz_dir/Cargo.toml" ]; then
        echo "no fuzz targets in crates/$crate (expected $fuzz_dir/Cargo.toml)" >&2
        exit 2
    fi
    log_dir="$fuzz_dir/target/logs"
    mkdir -p "$log_dir"
    cd "$crate_dir" || exit 2

    echo "== $crate: building fuzz targets (sanitizer: $SANITIZER)"
    if ! cargo fuzz build --sanitizer "$SANITIZER"; then
        echo "fuzz build failed for crates/$crate" >&2
        exit 2
    fi
    mapfile -t targets < <(cargo fuzz list)
    for target in "${targets[@]}"; do
        if [ -n "${FUZZ_TARGETS:-}" ] && ! [[ " $FUZZ_TARGETS " == *" $target "* ]]; then
            continue
        fi
        work="$fuzz_dir/target/corpus/$target"
        seeds="$fuzz_dir/corpus/$target"
        log="$log_dir/$target.log"
        mkdir -p "$work" "$seeds"
        before=$(find "$fuzz_dir/artifacts/$target" -type f 2>/dev/null | wc -l)
        echo "== $crate/$target: ${SECONDS_PER_TARGET}s (log: $log)"
        "${PIN[@]}" cargo fuzz run --sanitizer "$SANITIZER" "$target" "$work" "$seeds" -- \
            -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 >"$log" 2>&1
        status=$?
        after=$(find "$fuzz_dir/artifacts/$target" -type f 2>/dev/null | wc -l)

        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        last=$(grep -E '^#[0-9]+' "$log" | tail -1)
        cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
        ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
        corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
        rate=$(sed -n 's/.* exec\/s: \([0-9]*\).*/\1/p' <<<"$last")
        if [ "$status" -eq 0 ] && [ "$after" -eq "$before" ]; then
            verdict="no crash"
        else
            crashed=1
            verdict="CRASH (exit $status, $((after - before)) new artifact(s) in crates/$crate/fuzz/artifacts/$target/)"
            grep -m1 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" | sed 's/^/    /'
        fi
        line="$crate/$target: ${execs:-?} execs (${rate:-?}/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}: $verdict"
        echo "   $line"
        echo "$(date -u +%Y-%m-%dT%H:%MZ) ${SECONDS_PER_TARGET}s $SANITIZER $line" >>"$SUMMARY_FILE"
        summary+=("$line")
    done
done

echo
echo "== summary (${SECONDS_PER_TARGET}s per target, sanitizer $SANITIZER)"
printf '%s\n' "${summary[@]}"
exit "$crashed"
