#!/usr/bin/env bash
# Instructions per request of the filters' own Rust code (filter-core, native
# build, host test doubles): valgrind's callgrind counts instructions, which
# stay the same whatever else runs on the machine. Each case runs twice,
# with N and 2N requests; the difference divided by N is the per-request
# count without the set-up.
#
#   filters/core/bench/callgrind.sh [N]        # default N = 20000
#
# Needs valgrind (Debian package). BENCHMARKS.md, "Filters, one at a time".
set -euo pipefail
cd "$(dirname "$0")/../../.."
n="${1:-20000}"
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is required (apt-get install valgrind)" >&2; exit 1; }
cargo bench -q -p filter-core --bench hot_paths --no-run 2>/dev/null
bin="$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/hot_paths-* | grep -v '\.d$' | head -n1)"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
irs() { # case requests -> total instructions
  valgrind --tool=callgrind --callgrind-out-file="$work/out" "$bin" "$1" "$2" >/dev/null 2>"$work/err" \
    || { cat "$work/err" >&2; exit 1; }
  sed -n 's/^summary: //p' "$work/out"
}
printf '%-18s %14s\n' case "instr/request"
for c in auth-cached-key auth-cached-jwt validation-200b metrics; do
  one="$(irs "$c" "$n")"; two="$(irs "$c" "$((2 * n))")"
  printf '%-18s %14d\n' "$c" "$(( (two - one) / n ))"
done
