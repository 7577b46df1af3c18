#!/usr/bin/env bash
# Per-request cost of the validation and metrics filters, side by side with
# bare Envoy: one Envoy worker pinned to CPU 0, wrk pinned to CPU 1, a
# direct response (no upstream), interleaved rounds, medians.
#
#   filters/validation/bench/bench.sh [ROUNDS] [SECONDS]
#
# Needs: .venv/bin/envoy, wrk, taskset, and the release .wasm files
# (cargo build --release --target wasm32-wasip1 -p validation-filter -p metrics-filter).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
rounds="${1:-6}"
seconds="${2:-5}"
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

wasm() { # name
    cat <<YAML
          - name: $1
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: $1
                root_id: $1
                vm_config: { vm_id: $1, runtime: envoy.wasm.runtime.v8, code: { local: { filename: $wasm_dir/$1.wasm } } }
YAML
}

config() { # variant filters...
    local name="$1"; shift
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
        for f in "$@"; do wasm "$f"; done
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

config bare
config validation validation_filter
config metrics metrics_filter

run() { # variant -> req/s
    taskset -c 0 "$envoy" -c "$work/$1.yaml" --concurrency 1 --base-id 4242 --disable-hot-restart -l error >"$work/$1.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/api/v1/calculate-locate" -H 'content-type: application/json' --data-binary @"$work/body.json" && break
        sleep 0.1
    done
    taskset -c 1 wrk -t1 -c10 -d1s -s "$work/post.lua" "http://127.0.0.1:$port/api/v1/calculate-locate" >/dev/null
    taskset -c 1 wrk -t1 -c10 -d"${seconds}s" -s "$work/post.lua" "http://127.0.0.1:$port/api/v1/calculate-locate" \
        | awk '/Requests\/sec/ {print $2}'
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

declare -A results
for r in $(seq "$rounds"); do
    for v in bare validation metrics; do
        rps="$(run "$v")"
        results[$v]="${results[$v]:-} $rps"
        echo "round $r $v $rps req/s" >&2
    done
done

python3 - "${results[bare]}" "${results[validation]}" "${results[metrics]}" <<'PY'
import statistics, sys
names = ["bare", "validation", "metrics"]
med = {n: statistics.median(float(x) for x in s.split()) for n, s in zip(names, sys.argv[1:])}
base = 1e6 / med["bare"]
print(f"{'variant':<12} {'median req/s':>12} {'us/request':>11} {'added us':>9}")
for n in names:
    us = 1e6 / med[n]
    print(f"{n:<12} {med[n]:>12.0f} {us:>11.1f} {us - base:>9.1f}")
PY
