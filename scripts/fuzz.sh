#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 60) each, on stable Rust.
#
# With cargo-fuzz installed (`cargo install --locked cargo-fuzz@0.13.2`) this is
# `cargo fuzz run <target> -- -max_total_time=N`; without it the script builds the same
# libFuzzer binaries with the flags cargo-fuzz passes (sancov instrumentation, --cfg fuzzing,
# debug assertions) and RUSTC_BOOTSTRAP=1, which is all cargo-fuzz needs from nightly.
# Exit code is non-zero if any target crashes, panics or hangs (libFuzzer -timeout).
# Findings land in fuzz/artifacts/<target>/; new inputs in a scratch corpus copy, so the
# committed seed corpus (fuzz/corpus/<target>/) only changes by hand.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
TIMEOUT="${FUZZ_TIMEOUT:-10}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/zt-fuzz}"
export RUSTC_BOOTSTRAP=1
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
TARGETS="${FUZZ_TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^zengine-fuzz$')}"

RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo build --release --bins --target "$TRIPLE"

failed=()
for t in $TARGETS; do
    scratch="$(mktemp -d)"
    cp -r "corpus/$t/." "$scratch/" 2>/dev/null || true
    mkdir -p "artifacts/$t"
    echo "== $t: ${SECONDS_PER_TARGET}s"
    if ! "$CARGO_TARGET_DIR/$TRIPLE/release/$t" "$scratch" \
        -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" -rss_limit_mb=2048 \
        -max_len=65536 -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>"$scratch.log"; then
        failed+=("$t")
        tail -40 "$scratch.log"
    else
        grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units)' "$scratch.log" | tail -2 || true
    fi
    rm -rf "$scratch" "$scratch.log"
done
if ((${#failed[@]})); then
    echo "fuzz: FAILED targets: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: all targets ran ${SECONDS_PER_TARGET}s without a crash or hang"
