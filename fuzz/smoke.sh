#!/usr/bin/env bash
# Short fuzzing run of every target (default 10 s each), for `make test`.
#
#   fuzz/smoke.sh            # 10 s per target
#   FUZZ_SECONDS=300 fuzz/smoke.sh
#
# Runs on the default (stable) toolchain with RUSTC_BOOTSTRAP=1, which lets
# cargo-fuzz pass its nightly-only flags (-Zsanitizer=address); set
# FUZZ_TOOLCHAIN=nightly to use a nightly toolchain instead. New corpus
# entries go to a scratch directory, so the committed seed corpus stays as
# it is. A crash exits non-zero and leaves the input in
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-10}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 1
fi
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    toolchain=("+$FUZZ_TOOLCHAIN")
else
    toolchain=()
    export RUSTC_BOOTSTRAP=1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo "${toolchain[@]}" fuzz list); do
    mkdir -p "$scratch/$target"
    echo "fuzzing $target for ${seconds}s"
    cargo "${toolchain[@]}" fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1
done
