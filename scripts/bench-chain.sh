#!/usr/bin/env bash
# Filter-chain cost (make bench, BENCHMARKS.md "Filter chain: ours, native,
# bare"): what the gateway's filters cost Envoy, against bare Envoy and
# against the native filters a user could configure instead.
#
# One Envoy worker pinned to CPU 0, the load pinned to CPU 1. Every API route
# is answered by an Envoy direct response, so only the filter chain is
# measured (the make-run stack still serves key verification and the gRPC
# rate-limit service). POST /api/v1/calculate-locate with a 200-byte body.
# Variants, run interleaved (A B C … A B C …) for CHAIN_ROUNDS rounds:
#
#   bare        routing only (the buffer filter and the router)
#   rate-limits the two rate-limit filters alone (client id set by a
#               header_mutation): what every variant below shares
#   wasm-key    our chain: auth (cached API key, recording the metrics),
#               local + global rate limit, validation
#   wasm-key-separate-metrics  the same with a separate metrics filter (the
#               chain before the auth filter recorded the metrics)
#   native-key  api_key_auth, local + global rate limit (the same two
#               filters), Lua checking the body; Envoy's own stats
#   wasm-jwt    our chain with a cached HS256 JWT
#   native-jwt  jwt_authn (with its JWT cache) instead of api_key_auth
#
# More variants, for CHAIN_VARIANTS (what the metrics cost on requests that
# reach an upstream, without the rate-limit call's noise):
#   auth-only     the auth filter (cached API key) without its metrics section
#   auth-metrics  the auth filter recording the metrics
#   validation-only  the validation filter alone
#   validation-twice, validation-twice-shared-vm  two validation filters,
#               in a VM each or sharing one VM (what sharing a VM saves)
#   auth-metrics-before, wasm-key-before  the same with the auth filter
#               built earlier (CHAIN_BEFORE_WASM=path/to/auth_filter.wasm)
#
# Then latency against offered load (open loop, latency-corrected) for bare,
# wasm-key and native-key, drawn into docs/latency.png with gnuplot; then
# scaling of wasm-key: Envoy workers 1 and 2, 1 / 100 / 10 000 distinct
# clients, body sizes 200 B / 2 KiB / 8 KiB.
#
# Part "pairs" (not in the default CHAIN_PARTS): each pair A:B of
# CHAIN_PAIRS ("wasm-key:native-key wasm-key:bare") run at the same time,
# both Envoys on CPU 0, for PAIR_ROUNDS (5) rounds; reports the difference
# of their Envoy CPU time per request, which the machine's swings cancel out
# of.
#
# Settings: CHAIN_PARTS ("chain plot scale"), CHAIN_VARIANTS (the seven
# above), CHAIN_BEFORE_WASM (unset), CHAIN_ROUNDS (5),
# CHAIN_SECONDS (4), PLOT_RATES ("1000 2000 4000 6000 8000 10000"),
# PLOT_SECONDS (4, after a 1 s warm-up on the same connections),
# SCALE_ROUNDS (3).
# Needs `make build wasm`, wrk, taskset, gnuplot. Loopback only.
ROUNDS="${CHAIN_ROUNDS:-5}"
SECS="${CHAIN_SECONDS:-4}"
PLOT_RATES="${PLOT_RATES:-1000 2000 4000 6000 8000 10000}"
PLOT_SECS="${PLOT_SECONDS:-4}"
PARTS="${CHAIN_PARTS:-chain plot scale}"
part() { [[ " $PARTS " == *" $1 "* ]]; }
SCALE_ROUNDS="${SCALE_ROUNDS:-3}"
for tool in wrk taskset gnuplot; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
export RATE_LIMIT_PER_MINUTE=100000000 # the native variants carry no per-key limit
export DATABASE_URL="sqlite://$(mktemp -d "${TMPDIR:-/tmp}/bench-chain-db.XXXXXX")/pricing.db"
source "$(dirname "$0")/bench-stack.sh"
gen="$BIN_DIR/open_loop"
[[ -x "$gen" ]] || cargo build -q --profile server -p e2e --bin open_loop
envoy_pid=""
bench_on_exit='[[ -n "$envoy_pid" ]] && kill $envoy_pid 2>/dev/null || true'
work="$RUN_DIR/chain"; mkdir -p "$work"
secret="$(cat "$RUN_DIR/jwt_secret")"
url=http://127.0.0.1:8100/api/v1/calculate-locate

# A 200-byte body: the usual one padded with insignificant whitespace.
pad() { python3 -c 'import sys; b=sys.argv[1]; n=int(sys.argv[2]); print(b[:-1] + " " * (n - len(b)) + "}", end="")' "$1" "$2"; }
body="$(pad "$BENCH_BODY" 200)"
token="$(curl -fsS -X POST http://127.0.0.1:8000/api/v1/auth/token -H "x-api-key: $BENCH_KEY" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
wrk_script() { # file, auth header line, body
  cat >"$1" <<LUA
wrk.method = "POST"
wrk.body   = '$3'
wrk.headers["Content-Type"] = "application/json"
$2
LUA
}
wrk_script "$work/key.lua" "wrk.headers[\"X-API-Key\"] = \"$BENCH_KEY\"" "$body"
wrk_script "$work/jwt.lua" "wrk.headers[\"Authorization\"] = \"Bearer $token\"" "$body"

JWT_SECRET_KEY="$secret" cargo run -q -p gateway-config -- render --shape local --tls off \
  --listener-port 8100 --admin-port 9911 --out "$work/full.yaml"
# The variants (xtask/src/bench.rs): WORK/<variant>.yaml from full.yaml.
cargo run -q -p xtask -- bench chain-configs "$work" "$BENCH_KEY" "$secret" "${CHAIN_BEFORE_WASM:-}"
read -r -a VARIANTS <<<"${CHAIN_VARIANTS:-bare rate-limits wasm-key wasm-key-separate-metrics native-key wasm-jwt native-jwt}"
for v in "${VARIANTS[@]}"; do
  "$root/.venv/bin/envoy" --mode validate -c "$work/$v.yaml" -l error >/dev/null ||
    { echo "bench: $v.yaml does not validate" >&2; exit 1; }
done
script_for() { case "$1" in *jwt) echo "$work/jwt.lua" ;; *) echo "$work/key.lua" ;; esac; }

# wait_ready LISTENER ADMIN: the listener answers and every backend host is
# healthy (the first health checks answered) before the warm-up.
wait_ready() {
  for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$1/health" && break; sleep 0.1; done
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$2/clusters" | grep -q 'health_flags::/' || break; sleep 0.1
  done
}
# start_envoy VARIANT [WORKERS] [CPUS]: Envoy on :8100, warmed (the key or
# token verified once, caches filled).
start_envoy() {
  local v="$1" workers="${2:-1}" cpus="${3:-0}"
  taskset -c "$cpus" "$root/.venv/bin/envoy" -c "$work/$v.yaml" --concurrency "$workers" -l warn \
    --base-id 8 --disable-hot-restart >"$work/envoy-$v.log" 2>&1 &
  envoy_pid=$!
  wait_ready 8100 9911
  taskset -c 1 wrk -t1 -c4 -d1s -s "$(script_for "$v")" "$url" >/dev/null
}
stop_envoy() { kill "$envoy_pid"; wait "$envoy_pid" 2>/dev/null || true; envoy_pid=""; }
# measure TSV LABEL VARIANT LUA [WORKERS] [ENVOY_CPUS] [WRK_CPUS] [WARM-UP LUA]:
# one closed-loop wrk run on a fresh Envoy; appends "label req/s non-2xx" to TSV.
measure() {
  local tsv="$1" label="$2" v="$3" lua="$4" workers="${5:-1}" ecpus="${6:-0}" wcpus="${7:-1}" out
  start_envoy "$v" "$workers" "$ecpus"
  [[ -n "${8:-}" ]] && taskset -c "$wcpus" wrk -t1 -c32 -d3s -s "$8" "$url" >/dev/null
  out="$(taskset -c "$wcpus" wrk -t1 -c32 -d"${SECS}s" -s "$lua" "$url")"
  # Calls this Envoy made to the rate-limit service (warm-up included).
  local rls
  rls="$(curl -fsS 'http://127.0.0.1:9911/stats?filter=^cluster\.rate_limit_service\.upstream_rq_total$' |
    awk '{print $2}' | grep . || echo 0)"
  [[ -n "${CHAIN_DEBUG:-}" ]] && curl -fsS 'http://127.0.0.1:9911/stats?filter=bench_upstream' >"$work/stats-$label.txt" && cp "$work/stats-$label.txt" /tmp/ 
  stop_envoy
  printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '/Non-2xx/ {print $NF}' <<<"$out" | grep . || echo 0)" \
    "$(awk '/requests in/ {print $1}' <<<"$out")" "$rls" | tee -a "$tsv"
}

if part chain; then
echo "== chain: ${ROUNDS} interleaved rounds of ${SECS}s, one worker on CPU 0, wrk -c32 on CPU 1"
: >"$work/results.tsv"
for _ in $(seq 1 "$ROUNDS"); do
  for v in "${VARIANTS[@]}"; do
    measure "$work/results.tsv" "$v" "$v" "$(script_for "$v")"
  done
done
python3 - "$work/results.tsv" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
order = list(dict.fromkeys(r[0] for r in rows))
med = {v: statistics.median(float(r[1]) for r in rows if r[0] == v) for v in order}
bad = {v: sum(int(r[2]) for r in rows if r[0] == v) for v in order}
us = {v: 1e6 / med[v] for v in order}
print("\n| variant | req/s (median) | µs/request | added to bare, µs | share of bare's throughput | non-2xx |")
print("|---|---|---|---|---|---|")
for v in order:
    print(f"| {v} | {med[v]:,.0f} | {us[v]:.1f} | {us[v] - us['bare']:.1f} | {med[v] / med['bare']:.0%} | {bad[v]} |")
for kind in ("key", "jwt"):
    if f"wasm-{kind}" in med and f"native-{kind}" in med:
        w, n = med[f"wasm-{kind}"], med[f"native-{kind}"]
        print(f"\nwasm-{kind} / native-{kind} throughput: {w / n:.2f}  (target ≥ 1.00);"
              f" wasm-{kind} / bare: {w / med['bare']:.2f} (target ≥ 0.60)")
if "rate-limits" in med:
    print(f"\nrate limits alone / bare: {med['rate-limits'] / med['bare']:.2f}")
for a, b, what in (("wasm-key", "wasm-key-separate-metrics", "metrics in the auth filter, against a separate metrics filter"),
                   ("auth-metrics", "auth-only", "the metrics, recorded in the auth filter"),
                   ("auth-metrics-before", "auth-only", "the metrics, auth filter built earlier"),
                   ("wasm-key", "wasm-key-before", "the chain against the chain with the earlier auth filter")):
    if a in med and b in med:
        print(f"{a} against {b} ({what}): {us[a] - us[b]:+.1f} µs per request, throughput {med[a] / med[b]:.2f}×")
PY
fi

# Pairs: two variants at the same time, both Envoys pinned to CPU 0 (the
# scheduler gives each half of it), one wrk each on CPU 1. What the machine
# does meanwhile slows both alike, so the difference of their CPU time per
# request (from /proc) holds when sequential runs swing by tens of percent.
if part pairs; then
PAIR_ROUNDS="${PAIR_ROUNDS:-5}"
echo
echo "== pairs: ${PAIR_ROUNDS} rounds of ${SECS}s, both Envoys on CPU 0 at once, one wrk each on CPU 1"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
twin() { # VARIANT: its config moved to listener 8200, admin 9921, upstream 8202
  sed -e 's/port_value: 8100$/port_value: 8200/' -e 's/port_value: 9911$/port_value: 9921/' \
    -e 's/port_value: 8102$/port_value: 8202/' "$work/$1.yaml" >"$work/$1-twin.yaml"
}
: >"$work/pairs.tsv"
tick_us=$((1000000 / $(getconf CLK_TCK)))
for _ in $(seq 1 "$PAIR_ROUNDS"); do
  for pair in ${CHAIN_PAIRS:-wasm-key:native-key wasm-key:bare}; do
    a="${pair%%:*}" b="${pair##*:}"
    twin "$b"
    taskset -c 0 "$root/.venv/bin/envoy" -c "$work/$a.yaml" --concurrency 1 -l warn --base-id 8 \
      --disable-hot-restart >"$work/envoy-pair-a.log" 2>&1 &
    pid_a=$!
    taskset -c 0 "$root/.venv/bin/envoy" -c "$work/$b-twin.yaml" --concurrency 1 -l warn --base-id 9 \
      --disable-hot-restart >"$work/envoy-pair-b.log" 2>&1 &
    pid_b=$!
    envoy_pid="$pid_a $pid_b"
    wait_ready 8100 9911
    wait_ready 8200 9921
    taskset -c 1 wrk -t1 -c4 -d1s -s "$(script_for "$a")" "$url" >/dev/null
    taskset -c 1 wrk -t1 -c4 -d1s -s "$(script_for "$b")" "${url/8100/8200}" >/dev/null
    ca=$(cpu_ticks "$pid_a") cb=$(cpu_ticks "$pid_b")
    taskset -c 1 wrk -t1 -c32 -d"${SECS}s" -s "$(script_for "$a")" "$url" >"$work/pair-a.out" &
    wrk_a=$!
    taskset -c 1 wrk -t1 -c32 -d"${SECS}s" -s "$(script_for "$b")" "${url/8100/8200}" >"$work/pair-b.out" &
    wait "$wrk_a" $!
    ca=$(( $(cpu_ticks "$pid_a") - ca )) cb=$(( $(cpu_ticks "$pid_b") - cb ))
    kill "$pid_a" "$pid_b"; wait "$pid_a" "$pid_b" 2>/dev/null || true; envoy_pid=""
    ra="$(awk '/requests in/ {print $1}' "$work/pair-a.out")" rb="$(awk '/requests in/ {print $1}' "$work/pair-b.out")"
    na="$(awk '/Non-2xx/ {print $NF}' "$work/pair-a.out" | grep . || echo 0)"
    nb="$(awk '/Non-2xx/ {print $NF}' "$work/pair-b.out" | grep . || echo 0)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$a" "$b" "$ra" "$rb" \
      "$((ca * tick_us))" "$((cb * tick_us))" "$((na + nb))" "$tick_us" | tee -a "$work/pairs.tsv"
  done
done
python3 - "$work/pairs.tsv" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
pairs = list(dict.fromkeys((r[0], r[1]) for r in rows))
print("\n| A | B | A, Envoy CPU µs/request | B, Envoy CPU µs/request | A − B, µs (median of rounds) | B / A cost (A's throughput against B's) | non-2xx |")
print("|---|---|---|---|---|---|---|")
for a, b in pairs:
    rs = [r for r in rows if (r[0], r[1]) == (a, b)]
    ua = [int(r[4]) / int(r[2]) for r in rs]
    ub = [int(r[5]) / int(r[3]) for r in rs]
    diff = statistics.median(x - y for x, y in zip(ua, ub))
    ratio = statistics.median(y / x for x, y in zip(ua, ub))
    bad = sum(int(r[6]) for r in rs)
    print(f"| {a} | {b} | {statistics.median(ua):.1f} | {statistics.median(ub):.1f} | {diff:+.1f} | {ratio:.2f} | {bad} |")
PY
fi

if part plot; then
echo
echo "== latency against offered load (open loop, ${PLOT_SECS}s per point, load on CPU 1)"
: >"$work/latency.tsv"
for rate in $PLOT_RATES; do
  for v in bare wasm-key native-key; do
    start_envoy "$v"
    line="$(taskset -c 1 "$gen" --url "$url" --rate "$rate" --seconds "$PLOT_SECS" --warmup 1 --method POST \
      --body "$body" --header "x-api-key: $BENCH_KEY" --header 'content-type: application/json')"
    stop_envoy
    p50="$(grep -o 'p50_ms=[0-9.]*' <<<"$line" | cut -d= -f2)"
    p99="$(grep -o 'p99_ms=[0-9.]*' <<<"$line" | cut -d= -f2)"
    achieved="$(grep -o 'achieved_rps=[0-9.]*' <<<"$line" | cut -d= -f2)"
    printf '%s\t%s\t%s\t%s\t%s\n' "$v" "$rate" "$achieved" "$p50" "$p99" | tee -a "$work/latency.tsv"
  done
done
for v in bare wasm-key native-key; do
  awk -v v="$v" '$1 == v {print $2, $5}' "$work/latency.tsv" >"$work/latency-$v.dat"
done
gnuplot <<GP
set terminal pngcairo size 900,560 font ",11"
set output "$root/docs/latency.png"
set title "POST /api/v1/calculate-locate, direct response, one Envoy worker: p99 against offered load"
set xlabel "offered load (req/s, open loop)"
set ylabel "p99 latency (ms, log scale)"
set logscale y
set grid
set key top left
plot "$work/latency-bare.dat" with linespoints lw 2 title "(a) bare Envoy", \
     "$work/latency-wasm-key.dat" with linespoints lw 2 title "(b) wasm chain, cached key", \
     "$work/latency-native-key.dat" with linespoints lw 2 title "(c) native filters + Lua"
GP
echo "wrote docs/latency.png"
fi

part scale || exit 0

echo
echo "== scaling of wasm-key (${SCALE_ROUNDS} interleaved rounds of ${SECS}s)"
# 100 and 10 000 distinct clients: keys written straight into the stack's
# database (SHA-256 hex, as the store keeps them), one body per client.
db="${DATABASE_URL#sqlite://}"
python3 - "$db" "$work" "$BENCH_BODY" <<'PY'
import hashlib, secrets, sqlite3, string, sys, datetime
db, work, template = sys.argv[1:]
conn = sqlite3.connect(db, timeout=30)
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
alphabet = string.ascii_letters + string.digits
for n in (100, 10000):
    with open(f"{work}/clients-{n}.txt", "w") as out:
        for i in range(n):
            key = "brl_" + "".join(secrets.choice(alphabet) for _ in range(40))
            client = f"bench{n}_{i}"
            conn.execute(
                "INSERT INTO api_keys (key_id, key_hash, key_prefix, client_id, status, scopes,"
                " rate_limit_per_minute, created_at) VALUES (?, ?, ?, ?, 'active', '', 1000000, ?)",
                (f"key_bench{n}_{i}", hashlib.sha256(key.encode()).hexdigest(), key[:8], client, now))
            body = template.replace('"test123"', f'"{client}"')
            body = body[:-1] + " " * (200 - len(body)) + "}"
            out.write(f"{key}\t{body}\n")
conn.commit()
PY
for n in 100 10000; do
  cat >"$work/clients-$n.lua" <<LUA
local clients = {}
for line in io.lines("$work/clients-$n.txt") do
  local key, body = line:match("^(%S+)\t(.*)$")
  clients[#clients + 1] = { key, body }
end
local i = 0
request = function()
  i = i % #clients + 1
  return wrk.format("POST", nil, { ["X-API-Key"] = clients[i][1], ["Content-Type"] = "application/json" }, clients[i][2])
end
LUA
done
for size in 2048 8192; do
  wrk_script "$work/body-$size.lua" "wrk.headers[\"X-API-Key\"] = \"$BENCH_KEY\"" "$(pad "$BENCH_BODY" "$size")"
done
: >"$work/scale.tsv"
for _ in $(seq 1 "$SCALE_ROUNDS"); do
  measure "$work/scale.tsv" "workers=1 (Envoy and wrk share both CPUs)" wasm-key "$work/key.lua" 1 0,1 0,1
  measure "$work/scale.tsv" "workers=2 (Envoy and wrk share both CPUs)" wasm-key "$work/key.lua" 2 0,1 0,1
  measure "$work/scale.tsv" "clients=1" wasm-key "$work/key.lua" 1 0 1
  measure "$work/scale.tsv" "clients=100" wasm-key "$work/clients-100.lua" 1 0 1 "$work/clients-100.lua"
  measure "$work/scale.tsv" "clients=10000" wasm-key "$work/clients-10000.lua" 1 0 1 "$work/clients-10000.lua"
  measure "$work/scale.tsv" "body=200 B" wasm-key "$work/key.lua" 1 0 1
  measure "$work/scale.tsv" "body=2 KiB" wasm-key "$work/body-2048.lua" 1 0 1
  measure "$work/scale.tsv" "body=8 KiB" wasm-key "$work/body-8192.lua" 1 0 1
  measure "$work/scale.tsv" "body=8 KiB, bare" bare "$work/body-8192.lua" 1 0 1
done
python3 - "$work/scale.tsv" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
order = list(dict.fromkeys(r[0] for r in rows))
print("\n| wasm-key, case | req/s (median) | µs/request | non-2xx |")
print("|---|---|---|---|")
for v in order:
    m = statistics.median(float(r[1]) for r in rows if r[0] == v)
    bad = sum(int(r[2]) for r in rows if r[0] == v)
    print(f"| {v} | {m:,.0f} | {1e6 / m:.1f} | {bad} |")
PY
