#!/usr/bin/env bash
# End-to-end calculate-locate through the whole gateway (BENCHMARKS.md):
# Envoy with auth, local + global rate limit, validation and metrics filters,
# the calculation service and its audit write — started by cargo xtask run on
# the make-run ports, with one API key whose limits are raised so the load is
# not throttled. Closed loop (wrk) for maximum throughput; per-process CPU
# per request from /proc.
#
# Settings: BENCH_DURATION (10s), BENCH_CONNECTIONS (32). Needs the stack
# built (make build wasm) and wrk.
DURATION="${BENCH_DURATION:-10s}"
CONNS="${BENCH_CONNECTIONS:-32}"
command -v wrk >/dev/null || { echo "bench: wrk is required" >&2; exit 1; }
source "$(dirname "$0")/bench-stack.sh"
key="$BENCH_KEY"
body="$BENCH_BODY"
tmp="$RUN_DIR/bench"; mkdir -p "$tmp"
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
