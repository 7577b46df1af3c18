#!/usr/bin/env bash
# Where Envoy's CPU goes in the end-to-end calculate-locate chain
# (BENCHMARKS.md): the make-run stack (cargo xtask run) serves as backends,
# and a second Envoy on :8100 runs the full rendered gateway config, then the
# same config with one part taken out at a time. Variants run interleaved
# (A B C ... A B C ...) for BENCH_ROUNDS rounds of BENCH_SECONDS each, wrk
# -t1 -c32 closed loop; the table gives medians of req/s and of Envoy CPU
# per request (utime + stime from /proc around each run).
#
# Settings: BENCH_ROUNDS (3), BENCH_SECONDS (5), BREAKDOWN_VARIANTS (all).
# Needs `make build wasm`, wrk.
ROUNDS="${BENCH_ROUNDS:-3}"
SECS="${BENCH_SECONDS:-5}"
command -v wrk >/dev/null || { echo "bench: wrk is required" >&2; exit 1; }
source "$(dirname "$0")/bench-stack.sh"
envoy_pid=""
bench_on_exit='[[ -n "$envoy_pid" ]] && kill "$envoy_pid" 2>/dev/null || true'
key="$BENCH_KEY"
body="$BENCH_BODY"
work="$RUN_DIR/breakdown"; mkdir -p "$work"
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body   = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "$key"
LUA
# Without the auth filter nothing sets the identity the calculation service
# and the rate limits key on (client id and the key's own limit): that
# variant sends both itself.
sed 's/^wrk.headers\["X-API-Key"\].*/wrk.headers["x-client-id"] = "test123"\nwrk.headers["x-client-rate-limit"] = "1000000"/' \
  "$work/post.lua" >"$work/post-identity.lua"

# The variants: the full config, and the full config minus one part.
JWT_SECRET_KEY="$(cat "$RUN_DIR/jwt_secret")" cargo run -q -p gateway-config -- render --shape local --tls off \
  --listener-port 8100 --admin-port 9911 --out "$work/full.yaml"
# The variants (xtask/src/bench.rs): WORK/<variant>.yaml from full.yaml.
cargo run -q -p xtask -- bench breakdown-configs "$work"
# BREAKDOWN_VARIANTS picks some (e.g. "full envoy-local-bucket": the
# per-client bucket in the auth filter against Envoy's fixed one).
read -r -a VARIANTS <<<"${BREAKDOWN_VARIANTS:-full no-metrics no-auth-wasm no-validation no-global-rl no-local-rl envoy-local-bucket no-access-log}"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"
: >"$work/results.tsv"
for round in $(seq 1 "$ROUNDS"); do
  for v in "${VARIANTS[@]}"; do
    "$root/.venv/bin/envoy" -c "$work/$v.yaml" --concurrency 2 -l warn --base-id 7 \
      --disable-hot-restart >"$work/envoy-$v.log" 2>&1 &
    envoy_pid=$!
    for _ in $(seq 1 100); do curl -fs -o /dev/null http://127.0.0.1:8100/health && break; sleep 0.1; done
    sleep 3 # active health checks pass; the key is verified once before measuring
    for _ in 1 2 3; do
      curl -s -o /dev/null -X POST http://127.0.0.1:8100/api/v1/calculate-locate \
        -H "x-api-key: $key" -H 'content-type: application/json' -d "$body"
    done
    t0="$(ticks "$envoy_pid")"
    lua="$work/post.lua"
    [[ "$v" == no-auth-wasm ]] && lua="$work/post-identity.lua"
    out="$(wrk -t1 -c32 -d"${SECS}s" -s "$lua" http://127.0.0.1:8100/api/v1/calculate-locate)"
    t1="$(ticks "$envoy_pid")"
    kill "$envoy_pid"; wait "$envoy_pid" 2>/dev/null || true; envoy_pid=""
    reqs="$(awk '/requests in/ {print $1}' <<<"$out")"
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    bad="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
    cpu="$(python3 -c "print(round(($t1 - $t0) * 1e6 / $hz / max($reqs, 1), 1))")"
    printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$v" "$rps" "$cpu" "${bad:-0}" | tee -a "$work/results.tsv"
  done
done
python3 - "$work/results.tsv" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
order = []
for r in rows:
    if r[1] not in order:
        order.append(r[1])
med = {v: (statistics.median(float(r[2]) for r in rows if r[1] == v),
           statistics.median(float(r[3]) for r in rows if r[1] == v),
           sum(int(r[4]) for r in rows if r[1] == v)) for v in order}
full_cpu = med["full"][1]
print(f"\n| variant | req/s (median) | Envoy CPU µs/req (median) | CPU µs/req less than full | non-2xx |")
print("|---|---|---|---|---|")
for v in order:
    rps, cpu, bad = med[v]
    saved = "–" if v == "full" else f"{full_cpu - cpu:.1f}"
    print(f"| {v} | {rps:,.0f} | {cpu:.1f} | {saved} | {bad} |")
PY
