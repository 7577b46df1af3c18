#!/usr/bin/env bash
# Soak (make soak, docs/reliability.md): the make-run stack under a constant
# open-loop load of rates and calculate-locate for SOAK_SECONDS (300), with
# the resident memory of Envoy and of every backend read after a warm-up
# and at the end. Fails when any process grew by SOAK_MAX_GROWTH_PERCENT
# (10) or more, when a request failed, or when the audit log does not hold
# one row per successful calculation.
#
# Settings: SOAK_SECONDS (300), SOAK_RATE (200 req/s of each kind),
# SOAK_WARMUP_SECONDS (30). Needs `make build wasm`; loopback only.
set -euo pipefail
SECS="${SOAK_SECONDS:-300}"
RATE="${SOAK_RATE:-200}"
WARMUP="${SOAK_WARMUP_SECONDS:-30}"
MAX_GROWTH="${SOAK_MAX_GROWTH_PERCENT:-10}"
cd "$(dirname "$0")/.."
gen="${CARGO_TARGET_DIR:-target}/server/open_loop"
[[ -x "$gen" ]] || cargo build -q --profile server -p e2e --bin open_loop
export DATABASE_URL="sqlite://$(mktemp -d "${TMPDIR:-/tmp}/soak-db.XXXXXX")/pricing.db"
source "$(dirname "$0")/bench-stack.sh"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
declare -A pid
for f in "$RUN_DIR"/pids/*.pid; do
  n="$(basename "$f" .pid)"; [[ "$n" == supervisor ]] || pid[$n]="$(cat "$f")"
done
load() { # seconds -> runs both kinds in parallel, prints their result lines
  "$gen" --url http://127.0.0.1:8000/api/v1/rates/AAPL --rate "$RATE" --seconds "$1" \
    --header "x-api-key: $BENCH_KEY" >"$RUN_DIR/soak-rates.out" &
  local rates=$!
  "$gen" --url http://127.0.0.1:8000/api/v1/calculate-locate --rate "$RATE" --seconds "$1" \
    --method POST --body "$BENCH_BODY" --header "x-api-key: $BENCH_KEY" \
    --header 'content-type: application/json' >"$RUN_DIR/soak-calc.out"
  wait "$rates"
  echo "kind=rates $(cat "$RUN_DIR/soak-rates.out")"
  echo "kind=calc $(cat "$RUN_DIR/soak-calc.out")"
}
echo "soak: warm-up ${WARMUP}s at ${RATE} req/s of each kind"
warm="$(load "$WARMUP")"
declare -A before
for n in "${!pid[@]}"; do before[$n]="$(rss_kib "${pid[$n]}")"; done
echo "soak: ${SECS}s at ${RATE} req/s of each kind"
# RSS of every process every SOAK_SAMPLE_SECONDS (30) during the run, so a
# failure shows whether memory levels off or keeps climbing.
sample_every="${SOAK_SAMPLE_SECONDS:-30}"
( while sleep "$sample_every"; do
    for n in "${!pid[@]}"; do printf '%s %s\n' "$n" "$(rss_kib "${pid[$n]}")"; done
  done ) >"$RUN_DIR/soak-rss.txt" 2>/dev/null &
sampler=$!
bench_on_exit+="kill $sampler 2>/dev/null || true;"
main="$(load "$SECS")"
kill "$sampler" 2>/dev/null || true
echo "$main"
echo "soak: RSS (KiB) every ${sample_every}s:"
for n in "${!pid[@]}"; do
  printf '  %-20s %s\n' "$n" "$(awk -v n="$n" '$1 == n {printf "%s ", $2}' "$RUN_DIR/soak-rss.txt")"
done
status=0
printf '%-22s %10s %10s %8s\n' process "RSS before" "RSS after" growth
for n in "${!pid[@]}"; do
  after="$(rss_kib "${pid[$n]}")"
  growth="$(python3 -c "print(f'{100 * ($after - ${before[$n]}) / ${before[$n]}:.1f}')")"
  printf '%-22s %7s KiB %7s KiB %7s%%\n' "$n" "${before[$n]}" "$after" "$growth"
  python3 -c "import sys; sys.exit(0 if $growth < $MAX_GROWTH else 1)" || { echo "soak: $n grew ${growth}% (limit ${MAX_GROWTH}%)"; status=1; }
done
# Every request of the warm-up and the soak succeeded; the successful
# calculations (the 3 warm-up calls of bench-stack.sh included).
read -r failed calc_ok < <(printf '%s\n%s\n' "$warm" "$main" | python3 -c '
import sys
bad = ok = 0
for line in sys.stdin:
    v = dict(kv.split("=", 1) for kv in line.split())
    bad += int(v["non_2xx"]) + int(v["errors"])
    ok += int(v["ok"]) if v["kind"] == "calc" else 0
print(bad, ok + 3)')
[[ "$failed" == 0 ]] || { echo "soak: $failed requests failed"; status=1; }
rows="$(python3 - "${DATABASE_URL#sqlite://}" <<'PY'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM audit_log").fetchone()[0])
PY
)"
echo "soak: $calc_ok successful calculations, $rows audit rows"
[[ "$rows" == "$calc_ok" ]] || { echo "soak: audit rows differ from successful calculations"; status=1; }
exit "$status"
