#!/usr/bin/env bash
# End-to-end calculate-locate through the whole gateway (BENCHMARKS.md):
# Envoy with auth, local + global rate limit, validation and metrics filters,
# the calculation service and its audit write — started by scripts/run.sh on
# the make-run ports, with one API key whose limits are raised so the load is
# not throttled. Closed loop (wrk) for maximum throughput; per-process CPU
# per request from /proc.
#
# Settings: BENCH_DURATION (10s), BENCH_CONNECTIONS (32). Needs the stack
# built (make build wasm) and wrk.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
DURATION="${BENCH_DURATION:-10s}"
CONNS="${BENCH_CONNECTIONS:-32}"
BIN_DIR="${BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/server}"
command -v wrk >/dev/null || { echo "bench: wrk is required" >&2; exit 1; }
export RUN_DIR="${RUN_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/bench-e2e.XXXXXX")}"
export LOCAL_RATE_LIMIT_BURST=10000000 LOCAL_RATE_LIMIT_PER_SECOND=10000000
export LOG_LEVEL=warn ENVOY_LOG_LEVEL=warn
setsid scripts/run.sh >"$RUN_DIR/run.out" 2>&1 &
cleanup() { scripts/run.sh stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
for _ in $(seq 1 600); do
  grep -q "curl" "$RUN_DIR/run.out" 2>/dev/null && break
  sleep 0.2
done
key="$("$BIN_DIR/gatewayctl" keys create --client-id test123 --rate-limit-per-minute 1000000 | tail -n 1)"
body='{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}'
tmp="$RUN_DIR/bench"; mkdir -p "$tmp"
# Let the new key's first verification happen before the measurement.
for _ in 1 2 3; do
  curl -sS -o /dev/null -w '%{http_code}\n' -X POST http://127.0.0.1:8000/api/v1/calculate-locate \
    -H "x-api-key: $key" -H 'content-type: application/json' -d "$body"
done
cat > "$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.body   = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "$key"
LUA
pids=()
for f in "$RUN_DIR"/pids/*.pid; do
  n="$(basename "$f" .pid)"; [[ "$n" == supervisor ]] || pids+=("$n:$(cat "$f")")
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
declare -A before
for p in "${pids[@]}"; do before[$p]="$(ticks "${p#*:}")"; done
echo "wrk -t1 -c$CONNS -d$DURATION --latency POST /api/v1/calculate-locate through Envoy :8000"
wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$tmp/post.lua" \
  http://127.0.0.1:8000/api/v1/calculate-locate | tee "$tmp/wrk.out"
reqs="$(awk '/requests in/ {print $1}' "$tmp/wrk.out")"
hz="$(getconf CLK_TCK)"
echo "CPU per 1,000 requests (ms), by process:"
for p in "${pids[@]}"; do
  t=$(( $(ticks "${p#*:}") - ${before[$p]} ))
  python3 -c "print(f'  {\"${p%%:*}\":22s} {1000*1000*$t/$hz/max($reqs,1):8.1f}')"
done
