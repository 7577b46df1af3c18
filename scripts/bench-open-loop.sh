#!/usr/bin/env bash
# End-to-end latency at constant offered load (BENCHMARKS.md): the make-run
# stack (auth with a cached key, local + global rate limit, validation,
# metrics, the backends, an audit row per calculation), loaded open loop by
# target/server/open_loop (latency measured from each request's scheduled
# start, so queueing is never hidden), for `rates` and `calculate-locate`
# at each rate of BENCH_RATES.
#
# Settings: BENCH_RATES ("500 1000 2000"), BENCH_SECONDS (10). Needs
# `make build wasm` (open_loop is built here if missing).
set -euo pipefail
RATES="${BENCH_RATES:-500 1000 2000}"
SECS="${BENCH_SECONDS:-10}"
cd "$(dirname "$0")/.."
gen="${CARGO_TARGET_DIR:-target}/server/open_loop"
[[ -x "$gen" ]] || cargo build -q --profile server -p e2e --bin open_loop
source "$(dirname "$0")/bench-stack.sh"
echo "| endpoint | offered req/s | achieved | ok | non-2xx | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for rate in $RATES; do
  for endpoint in rates calculate-locate; do
    if [[ "$endpoint" == rates ]]; then
      out="$("$gen" --url http://127.0.0.1:8000/api/v1/rates/AAPL --rate "$rate" --seconds "$SECS" \
        --header "x-api-key: $BENCH_KEY")"
    else
      out="$("$gen" --url http://127.0.0.1:8000/api/v1/calculate-locate --rate "$rate" --seconds "$SECS" \
        --method POST --body "$BENCH_BODY" --header "x-api-key: $BENCH_KEY" \
        --header 'content-type: application/json')"
    fi
    python3 - "$endpoint" "$out" <<'PY'
import sys
endpoint, line = sys.argv[1], sys.argv[2]
v = dict(kv.split("=", 1) for kv in line.split())
print(f"| {endpoint} | {v['offered_rps']} | {v['achieved_rps']} | {v['ok']} | {v['non_2xx']} | {v['errors']} "
      f"| {v['p50_ms']} | {v['p90_ms']} | {v['p99_ms']} | {v['p999_ms']} | {v['max_ms']} |")
PY
  done
done
