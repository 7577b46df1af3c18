#!/usr/bin/env bash
# Memory of the wasm filter VMs per Envoy worker: Envoy's resident memory
# (VmRSS) with 1 and with 2 workers, bare and with the given filter chain,
# each after 1 s of load (so every worker's VMs have served requests).
#
#   filters/validation/bench/memory.sh [ROUNDS] [FILE.wasm ...]
#
# Without files: auth, validation and metrics filters from
# $CARGO_TARGET_DIR/wasm32-wasip1/release. Per worker, the filters cost
#   (RSS(filters, 2 workers) - RSS(filters, 1 worker))
#   - (RSS(bare, 2 workers) - RSS(bare, 1 worker)),
# i.e. what a second worker costs with the filters beyond what it costs
# without them. The figure with 1 worker minus bare is everything the
# filters add to a one-worker Envoy (V8 engine, main-thread VMs, worker VMs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
rounds="${1:-3}"
shift $(( $# < 1 ? $# : 1 ))
wasm_dir="${CARGO_TARGET_DIR:-$repo/target}/wasm32-wasip1/release"
if [ $# -eq 0 ]; then
    set -- "$wasm_dir/auth_filter.wasm" "$wasm_dir/validation_filter.wasm" "$wasm_dir/metrics_filter.wasm"
fi
envoy="$repo/.venv/bin/envoy"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=18610
admin=18611

config() { # name files...
    local name="$1" i=0 f n; shift
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
        for f in "$@"; do
            i=$((i + 1)); n="$(basename "$f" .wasm)"
            cat <<YAML
          - name: $n
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: $n
                root_id: $n
                vm_config: { vm_id: vm${i}_$n, runtime: envoy.wasm.runtime.v8, code: { local: { filename: $(realpath "$f") } } }
YAML
        done
        cat <<YAML
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
YAML
    } > "$work/$name.yaml"
}

rss() { # name workers -> KiB
    "$envoy" -c "$work/$1.yaml" --concurrency "$2" --base-id 4243 --disable-hot-restart -l error >"$work/$1.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/health" && break
        sleep 0.1
    done
    wrk -t2 -c16 -d1s "http://127.0.0.1:$port/api/v1/rates/AAPL" >/dev/null
    sleep 0.5
    awk '/^VmRSS/ {print $2}' "/proc/$pid/status"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

config bare
config filters "$@"
declare -A kib
for r in $(seq "$rounds"); do
    for v in bare filters; do
        for w in 1 2; do
            k="$(rss "$v" "$w")"
            kib[$v$w]="${kib[$v$w]:-} $k"
            echo "round $r $v workers=$w rss $k KiB" >&2
        done
    done
done
python3 - "${kib[bare1]}" "${kib[bare2]}" "${kib[filters1]}" "${kib[filters2]}" <<'PY'
import statistics, sys
b1, b2, f1, f2 = (statistics.median(float(x) for x in s.split()) / 1024 for s in sys.argv[1:])
print(f"RSS MiB (medians): bare 1 worker {b1:.1f}, 2 workers {b2:.1f}; filters 1 worker {f1:.1f}, 2 workers {f2:.1f}")
print(f"filters added to a 1-worker Envoy: {f1 - b1:.1f} MiB")
print(f"filter VMs per additional worker:  {(f2 - f1) - (b2 - b1):.1f} MiB")
PY
