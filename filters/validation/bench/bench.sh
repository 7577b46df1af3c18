#!/usr/bin/env bash
# Per-request cost of the validation and metrics filters, side by side with
# bare Envoy: one Envoy worker pinned to CPU 0, wrk pinned to CPU 1, a
# direct response (no upstream), interleaved rounds, medians.
#
#   filters/validation/bench/bench.sh [ROUNDS] [SECONDS] [VARIANT=FILE[,FILE...]]...
#
# Without variants: bare, validation, metrics (the release .wasm files).
# A variant names a chain of .wasm files (any path), e.g. to compare an old
# build with a new one in the same interleaved run:
#   bench.sh 6 5 old=/tmp/old/validation_filter.wasm new=target/.../validation_filter.wasm
# "bare" (no wasm filter) is always measured. Besides wall-clock req/s, the
# script reports Envoy's own CPU time per request (utime + stime over the
# measured run / requests), which stays meaningful when other work shares
# the machine. Envoy's resident memory (RSS)
# after the load is reported too: the memory of the wasm VMs of the one
# worker is the difference to bare.
# Needs: .venv/bin/envoy, wrk, taskset, and the release .wasm files
# (cargo build --release --target wasm32-wasip1 -p validation-filter -p metrics-filter).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
rounds="${1:-6}"
seconds="${2:-5}"
shift $(( $# < 2 ? $# : 2 ))
wasm_dir="${CARGO_TARGET_DIR:-$repo/target}/wasm32-wasip1/release"
envoy="$repo/.venv/bin/envoy"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

port=18600
admin=18601

# A valid calculate-locate body padded with spaces to exactly 200 bytes.
python3 - "$work/body.json" <<'PY'
import sys
b = '{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}'
open(sys.argv[1], "w").write(b + " " * (200 - len(b)))
PY
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
local f = io.open("$work/body.json", "rb")
wrk.body = f:read("*a")
f:close()
LUA

wasm() { # index file
    local name
    name="$(basename "$2" .wasm)"
    cat <<YAML
          - name: $name
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: $name
                root_id: $name
                vm_config: { vm_id: vm$1_$name, runtime: envoy.wasm.runtime.v8, code: { local: { filename: $2 } } }
YAML
}

config() { # variant files...
    local name="$1" i=0; shift
    {
        cat <<YAML
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $admin } } }
static_resources:
  listeners:
  - address: { socket_address: { address: 127.0.0.1, port_value: $port } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: / }
                direct_response: { status: 200, body: { inline_string: '{"status":"success"}' } }
          http_filters:
YAML
        for f in "$@"; do i=$((i + 1)); wasm "$i" "$(realpath "$f")"; done
        cat <<YAML
          - name: envoy.filters.http.buffer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
              max_request_bytes: 65536
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
YAML
    } > "$work/$name.yaml"
}

variants=(bare)
config bare
if [ $# -eq 0 ]; then
    set -- "validation=$wasm_dir/validation_filter.wasm" "metrics=$wasm_dir/metrics_filter.wasm"
fi
for spec in "$@"; do
    name="${spec%%=*}"
    IFS=, read -r -a files <<<"${spec#*=}"
    for f in "${files[@]}"; do [ -f "$f" ] || { echo "missing $f" >&2; exit 1; }; done
    config "$name" "${files[@]}"
    variants+=("$name")
done

cpu_ticks() { # pid -> utime + stime of all its threads, in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}

run() { # variant -> "req/s cpu_us_per_request rss_kib"
    taskset -c 0 "$envoy" -c "$work/$1.yaml" --concurrency 1 --base-id 4242 --disable-hot-restart -l error >"$work/$1.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/api/v1/calculate-locate" -H 'content-type: application/json' --data-binary @"$work/body.json" && break
        sleep 0.1
    done
    taskset -c 1 wrk -t1 -c10 -d1s -s "$work/post.lua" "http://127.0.0.1:$port/api/v1/calculate-locate" >/dev/null
    local t0 t1 out
    t0="$(cpu_ticks "$pid")"
    out="$(taskset -c 1 wrk -t1 -c10 -d"${seconds}s" -s "$work/post.lua" "http://127.0.0.1:$port/api/v1/calculate-locate")"
    t1="$(cpu_ticks "$pid")"
    # Envoy's own CPU time per request: unlike req/s, hardly affected by
    # other processes competing for the cores.
    echo "$out" | awk -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
        -v rss="$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")" '
        /requests in/ {n = $1}
        /Requests\/sec/ {rps = $2}
        END {printf "%s %.2f %s\n", rps, (t1 - t0) / hz * 1e6 / n, rss}'
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

declare -A results cpu rss
for r in $(seq "$rounds"); do
    for v in "${variants[@]}"; do
        read -r rps us kib <<<"$(run "$v")"
        results[$v]="${results[$v]:-} $rps"
        cpu[$v]="${cpu[$v]:-} $us"
        rss[$v]="${rss[$v]:-} $kib"
        echo "round $r $v $rps req/s, envoy cpu $us us/request, rss ${kib} KiB" >&2
    done
done

args=()
for v in "${variants[@]}"; do args+=("$v" "${results[$v]}" "${cpu[$v]}" "${rss[$v]}"); done
python3 - "${args[@]}" <<'PY'
import statistics, sys
a = sys.argv[1:]
med = lambda s: statistics.median(float(x) for x in s.split())
rows = [(a[i], med(a[i + 1]), med(a[i + 2]), med(a[i + 3])) for i in range(0, len(a), 4)]
_, base_rps, base_cpu, base_rss = rows[0]
print(f"{'variant':<14} {'req/s':>7} {'us/req':>7} {'added':>6} | {'cpu us/req':>10} {'added':>6} | {'RSS MiB':>7} {'added':>6}")
for name, rps, cpu, kib in rows:
    us = 1e6 / rps
    print(f"{name:<14} {rps:>7.0f} {us:>7.1f} {us - 1e6 / base_rps:>6.1f} | {cpu:>10.1f} {cpu - base_cpu:>6.1f} | {kib / 1024:>7.1f} {(kib - base_rss) / 1024:>6.1f}")
PY
