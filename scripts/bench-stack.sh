# Sourced by the end-to-end benchmark scripts: starts the make-run stack
# (cargo xtask run) in a scratch RUN_DIR with the per-client local bucket
# raised, waits until it answers, and creates one API key for test123 with a
# 1 000 000/min limit so the load is never throttled.
#
# Sets: root, BIN_DIR, RUN_DIR, BENCH_KEY, BENCH_BODY (a calculate-locate
# body). Stops the stack on exit (extend with bench_on_exit).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
BIN_DIR="${BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/server}"
export RUN_DIR="${RUN_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/bench-stack.XXXXXX")}"
export LOG_LEVEL=warn ENVOY_LOG_LEVEL=warn
bench_on_exit=""
bench_cleanup() {
  eval "$bench_on_exit"
  cargo xtask run stop >/dev/null 2>&1 || true
}
trap bench_cleanup EXIT
cargo build -q -p xtask
setsid cargo xtask run >"$RUN_DIR/run.out" 2>&1 &
for _ in $(seq 1 600); do
  grep -q "curl" "$RUN_DIR/run.out" 2>/dev/null && break
  sleep 0.2
done
grep -q "curl" "$RUN_DIR/run.out" || { cat "$RUN_DIR/run.out" >&2; echo "bench: the stack did not start" >&2; exit 1; }
BENCH_KEY="$("$BIN_DIR/gatewayctl" keys create --client-id test123 --rate-limit-per-minute 1000000 | tail -n 1)"
BENCH_BODY='{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}'
# The new key's first verification happens before any measurement.
for _ in 1 2 3; do
  curl -sS -o /dev/null -X POST http://127.0.0.1:8000/api/v1/calculate-locate \
    -H "x-api-key: $BENCH_KEY" -H 'content-type: application/json' -d "$BENCH_BODY"
done
