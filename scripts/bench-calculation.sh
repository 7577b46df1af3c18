#!/usr/bin/env bash
# Calculation-service throughput on loopback (BENCHMARKS.md).
#
# Starts target/server/calculation-service on a free 127.0.0.1 port over a
# fresh SQLite database (or BENCH_DATABASE_URL), warms the rate cache, then
# runs wrk with POST /calculate-locate for a cached ticker and prints wrk's
# latency distribution (p50 … p99). Every answered request writes its audit
# row, so the script finally checks that the audit log holds exactly as many
# rows as there were 200 answers.
#
# Settings: BENCH_DURATION (10s), BENCH_CONNECTIONS (64), BENCH_THREADS (1),
# BENCH_DATABASE_URL (fresh SQLite), BIN_DIR (target/server).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
BIN_DIR="${BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/server}"
DURATION="${BENCH_DURATION:-10s}"
CONNS="${BENCH_CONNECTIONS:-64}"
THREADS="${BENCH_THREADS:-1}"
command -v wrk >/dev/null || { echo "bench: wrk is required (apt-get install wrk)" >&2; exit 1; }
[[ -x "$BIN_DIR/calculation-service" ]] || { echo "bench: $BIN_DIR/calculation-service missing (make build)" >&2; exit 1; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/bench-calc.XXXXXX")"
db_url="${BENCH_DATABASE_URL:-sqlite://$tmp/bench.db}"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
DATABASE_URL="$db_url" LISTEN_ADDR="127.0.0.1:$port" LOG_LEVEL=warn \
  "$BIN_DIR/calculation-service" 2>"$tmp/service.log" &
pid=$!
cleanup() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null && break
  sleep 0.1
done
body='{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}'
warm="$(curl -fsS -X POST "http://127.0.0.1:$port/calculate-locate" -H 'content-type: application/json' -d "$body")"
echo "warm-up answer: $warm"
cat > "$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.body   = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
ticks_before="$(cpu_ticks)"
echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency (POST /calculate-locate, AAPL cached, $(nproc) cores)"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$tmp/post.lua" \
  "http://127.0.0.1:$port/calculate-locate" | tee "$tmp/wrk.out"
ticks_after="$(cpu_ticks)"
# CPU time the service itself used per answered request: on a machine shared
# with other work this shows the capacity (requests per core-second) even
# when wall-clock throughput is limited by what the scheduler gives us.
python3 - "$ticks_before" "$ticks_after" "$(getconf CLK_TCK)" "$tmp/wrk.out" <<'PY'
import re, sys
before, after, hz, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), open(sys.argv[4]).read()
n = int(re.search(r"(\d+) requests in", out).group(1))
cpu = (after - before) / hz
if n and cpu > 0:
    print(f"service CPU: {cpu:.2f} s for {n} requests = {cpu / n * 1e6:.0f} us/request "
          f"= {n / cpu:,.0f} requests per core-second")
PY

# Every 200 answer left exactly one audit row.
if [[ "$db_url" == sqlite://* ]]; then
  sleep 0.5
  rows="$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from audit_log").fetchone()[0])' "${db_url#sqlite://}")"
  answered="$(awk '/requests in/ {print $1}' "$tmp/wrk.out")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk.out")"
  echo "audit rows: $rows (wrk completed $answered requests + 1 warm-up; non-2xx: ${non2xx:-0})"
fi
