#!/usr/bin/env bash
# Builds the fuzz targets and runs each for a bounded time over its seed corpus; exits non-zero
# on the first crash (libFuzzer saves the input under fuzz/artifacts/<target>/ and prints how
# to replay it). CI runs `bash fuzz/run.sh 10` (six targets: a minute of fuzzing in all);
# longer runs pass more seconds, and optionally the targets to run.
#
# Needs cargo-fuzz, installed here at the pinned version if missing, and the stable toolchain
# with RUSTC_BOOTSTRAP=1 for its -Z flags (see fuzz/README.md for why). New inputs that widen
# coverage go to fuzz/work/<target>/ (ignored), never into the committed seeds.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-10}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(frames wire_messages batch log_recovery broker_snapshots kafka_requests)
fi
cargo_fuzz_version=0.13.2

echo "--- cargo-fuzz $cargo_fuzz_version ($(date -u +%T))"
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
    cargo install cargo-fuzz --version "=$cargo_fuzz_version" --locked
fi
# cargo-fuzz passes -Zsanitizer=address and other -Z flags; the stable compiler takes them only
# with this set. Nothing outside this script sees it.
export RUSTC_BOOTSTRAP=1

echo "--- build ($(date -u +%T))"
cargo fuzz build
for target in "${targets[@]}"; do
    mkdir -p "work/$target"
    echo "--- fuzz $target for ${seconds}s ($(date -u +%T))"
    # -timeout: one input running this long is a hang, reported as a crash.
    log="work/$target.log"
    if ! cargo fuzz run "$target" "work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 80 "$log" >&2
        echo "fuzz target $target failed: the input is saved under fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$log"
done
echo "--- done ($(date -u +%T))"
# The plain closing line CI logs are read for: each target that ran its time without a crash passed.
echo "fuzz: ${#targets[@]} passed, 0 failed"
