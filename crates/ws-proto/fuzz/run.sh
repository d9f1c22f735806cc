#!/usr/bin/env bash
# Runs every fuzz target of duplex-ws-proto for a while and reports.
#
# Usage: crates/ws-proto/fuzz/run.sh [SECONDS]   (default 60 per target)
#
# Works on the stable toolchain: cargo-fuzz passes nightly-only flags
# (-Zsanitizer=address, -Cpasses=sancov-module ...) to rustc, and
# RUSTC_BOOTSTRAP=1 lets a stable rustc accept them. The stable toolchain
# ships the AddressSanitizer runtime (librustc-stable_rt.asan.a), so the
# default build is an optimised one with debug assertions, overflow checks
# and ASan. Set FUZZ_SANITIZER=none to fuzz without ASan (faster, catches
# panics only), e.g. on a target whose toolchain lacks the runtime.
#
# Installs cargo-fuzz (cargo install cargo-fuzz --locked) when it is
# missing. Each target starts from its committed seeds in corpus/<target>/
# (read only) and keeps what it learns in target/corpus/<target>/ (ignored
# by git, reused by the next run). Crashing inputs land in
# artifacts/<target>/; reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> artifacts/<target>/crash-...
# from crates/ws-proto.
#
# Exit status: 0 when no target crashed, 1 when one did, 2 on setup errors.

set -uo pipefail

SECONDS_PER_TARGET="${1:-60}"
SANITIZER="${FUZZ_SANITIZER:-address}"
FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CRATE_DIR="$(dirname "$FUZZ_DIR")"
LOG_DIR="$FUZZ_DIR/target/logs"
export RUSTC_BOOTSTRAP=1

if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -eq 0 ]; then
    echo "usage: $0 [SECONDS]  (a positive whole number of seconds per target)" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked || { echo "cargo-fuzz install failed" >&2; exit 2; }
fi

cd "$CRATE_DIR" || exit 2
mkdir -p "$LOG_DIR"

echo "== building fuzz targets (sanitizer: $SANITIZER)"
if ! cargo fuzz build --sanitizer "$SANITIZER"; then
    echo "fuzz build failed" >&2
    exit 2
fi

mapfile -t TARGETS < <(cargo fuzz list)
if [ "${#TARGETS[@]}" -eq 0 ]; then
    echo "no fuzz targets found" >&2
    exit 2
fi

crashed=0
summary=()
for target in "${TARGETS[@]}"; do
    work="$FUZZ_DIR/target/corpus/$target"
    seeds="$FUZZ_DIR/corpus/$target"
    log="$LOG_DIR/$target.log"
    mkdir -p "$work" "$seeds"
    before=$(find "$FUZZ_DIR/artifacts/$target" -type f 2>/dev/null | wc -l)
    echo "== $target: ${SECONDS_PER_TARGET}s (log: $log)"
    cargo fuzz run --sanitizer "$SANITIZER" "$target" "$work" "$seeds" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 >"$log" 2>&1
    status=$?
    after=$(find "$FUZZ_DIR/artifacts/$target" -type f 2>/dev/null | wc -l)

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
        verdict="CRASH (exit $status, $((after - before)) new artifact(s) in artifacts/$target/)"
        grep -m1 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$log" | sed 's/^/    /'
    fi
    line="$target: ${execs:-?} execs (${rate:-?}/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}: $verdict"
    echo "   $line"
    summary+=("$line")
done

echo
echo "== summary (${SECONDS_PER_TARGET}s per target, sanitizer $SANITIZER)"
printf '%s\n' "${summary[@]}"
exit "$crashed"
