#!/usr/bin/env bash
# Run the whole gateway on this machine (127.0.0.1 only), supervised:
#
#   scripts/run.sh          start everything, print the demo key and curl
#                           lines, then supervise until Ctrl-C
#   scripts/run.sh stop     stop a running instance (from another shell)
#   scripts/run.sh status   show what is running
#
# Processes: data-service :8081, calculation-service :8082, auth-service
# :8083, ops-service :8084 (internal :8085), ratelimit-service :8090 (gRPC) / :8091 (HTTP),
# Envoy :8000 (HTTP), :8443 (TLS), admin 127.0.0.1:9901.
# Logs and pid files: $RUN_DIR (default .run/), logs in $RUN_DIR/logs.
# Binaries: $BIN_DIR (default: the first of target/{server,release,debug}
# holding data-service, under $CARGO_TARGET_DIR when set).
# Settings: environment, then .env if present (see .env.example).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
RUN_DIR="${RUN_DIR:-$root/.run}"
LOG_DIR="$RUN_DIR/logs"
PID_DIR="$RUN_DIR/pids"
SERVICES=(data-service calculation-service auth-service ops-service ratelimit-service)

say() { printf '%s\n' "$*"; }
err() { printf 'run: %s\n' "$*" >&2; }

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

# Stop every process this script started (pid files only, never by name).
stop_all() {
  local name pid f waited
  shopt -s nullglob
  for f in "$PID_DIR"/*.pid; do
    name="$(basename "$f" .pid)"
    [[ "$name" == supervisor ]] && continue
    pid="$(cat "$f" 2>/dev/null || true)"
    if pid_alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for f in "$PID_DIR"/*.pid; do
    name="$(basename "$f" .pid)"
    [[ "$name" == supervisor ]] && continue
    pid="$(cat "$f" 2>/dev/null || true)"
    waited=0
    while pid_alive "$pid" && (( waited < 50 )); do sleep 0.1; waited=$((waited + 1)); done
    if pid_alive "$pid"; then
      err "$name (pid $pid) ignored SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
  shopt -u nullglob
}

cmd="${1:-start}"
case "$cmd" in
  stop)
    sup="$(cat "$PID_DIR/supervisor.pid" 2>/dev/null || true)"
    if pid_alive "$sup"; then
      # The supervisor stops its children and exits.
      kill -TERM "$sup"
      for _ in $(seq 1 100); do pid_alive "$sup" || break; sleep 0.1; done
    fi
    stop_all
    rm -f "$PID_DIR/supervisor.pid"
    say "stopped"
    exit 0
    ;;
  status)
    shopt -s nullglob
    for f in "$PID_DIR"/*.pid; do
      pid="$(cat "$f")"
      if pid_alive "$pid"; then say "$(basename "$f" .pid): running (pid $pid)"; else say "$(basename "$f" .pid): dead"; fi
    done
    exit 0
    ;;
  start) ;;
  *) err "usage: $0 [start|stop|status]"; exit 2 ;;
esac

# --- settings ---------------------------------------------------------------
if [[ -f "$root/.env" ]]; then
  set -a
  # shellcheck disable=SC1091
  . "$root/.env"
  set +a
fi
mkdir -p "$LOG_DIR" "$PID_DIR" "$root/var"
chmod 700 "$RUN_DIR"

sup="$(cat "$PID_DIR/supervisor.pid" 2>/dev/null || true)"
if pid_alive "$sup"; then
  err "already running (supervisor pid $sup); use 'make stop' first"
  exit 1
fi
stop_all  # leftovers of a run that was killed hard

target="${CARGO_TARGET_DIR:-$root/target}"
if [[ -z "${BIN_DIR:-}" ]]; then
  for profile in server release debug; do
    if [[ -x "$target/$profile/data-service" ]]; then BIN_DIR="$target/$profile"; break; fi
  done
fi
BIN_DIR="${BIN_DIR:-$target/server}"
for bin in "${SERVICES[@]}" gatewayctl gateway-config; do
  if [[ ! -x "$BIN_DIR/$bin" ]]; then
    err "$BIN_DIR/$bin is missing: build first (make build)"
    exit 1
  fi
done
WASM_DIR="${WASM_DIR:-$target/wasm32-wasip1/release}"
for f in auth_filter validation_filter metrics_filter; do
  if [[ ! -f "$WASM_DIR/$f.wasm" ]]; then
    err "$WASM_DIR/$f.wasm is missing: build the filters first (make wasm)"
    exit 1
  fi
done

"$root/scripts/ensure-envoy.sh"
"$root/scripts/gen-cert.sh" "$root/certs"

# One JWT secret shared by the auth service (issues tokens) and the auth
# filter (verifies them); generated once per checkout unless provided.
if [[ -z "${JWT_SECRET_KEY:-}" ]]; then
  secret_file="$RUN_DIR/jwt_secret"
  if [[ ! -s "$secret_file" ]]; then
    (umask 077; openssl rand -hex 32 > "$secret_file")
  fi
  JWT_SECRET_KEY="$(cat "$secret_file")"
fi
export JWT_SECRET_KEY
export ENVIRONMENT="${ENVIRONMENT:-development}"
export LOG_LEVEL="${LOG_LEVEL:-info}"
export RATE_LIMIT_PER_MINUTE="${RATE_LIMIT_PER_MINUTE:-60}"
export DATA_SERVICE_URL="${DATA_SERVICE_URL:-http://127.0.0.1:8081}"
export CALCULATION_SERVICE_URL="${CALCULATION_SERVICE_URL:-http://127.0.0.1:8082}"
export AUTH_SERVICE_URL="${AUTH_SERVICE_URL:-http://127.0.0.1:8083}"
export RATELIMIT_SERVICE_URL="${RATELIMIT_SERVICE_URL:-http://127.0.0.1:8091}"
export ENVOY_ADMIN_URL="${ENVOY_ADMIN_URL:-http://127.0.0.1:9901}"

# --- start --------------------------------------------------------------------
declare -A PIDS=()
echo $$ > "$PID_DIR/supervisor.pid"

shutdown() {
  trap - INT TERM
  say ""
  say "stopping..."
  stop_all
  rm -f "$PID_DIR/supervisor.pid"
  say "stopped"
  exit "${1:-0}"
}
trap 'shutdown 0' INT TERM

start_proc() {  # name, command...
  local name="$1"; shift
  "$@" >>"$LOG_DIR/$name.log" 2>&1 &
  PIDS[$name]=$!
  echo $! > "$PID_DIR/$name.pid"
}

wait_http() {  # name, url, seconds
  local name="$1" url="$2" deadline=$((SECONDS + $3))
  while (( SECONDS < deadline )); do
    if ! pid_alive "${PIDS[$name]}"; then
      err "$name exited during start-up; last lines of $LOG_DIR/$name.log:"
      tail -n 20 "$LOG_DIR/$name.log" >&2 || true
      shutdown 1
    fi
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  err "$name did not answer $url within $3 s; see $LOG_DIR/$name.log"
  shutdown 1
}

say "logs: $LOG_DIR"
start_proc data-service "$BIN_DIR/data-service"
start_proc calculation-service "$BIN_DIR/calculation-service"
start_proc auth-service "$BIN_DIR/auth-service"
start_proc ops-service "$BIN_DIR/ops-service"
start_proc ratelimit-service "$BIN_DIR/ratelimit-service"
wait_http data-service http://127.0.0.1:8081/health 60
wait_http calculation-service http://127.0.0.1:8082/health 60
wait_http auth-service http://127.0.0.1:8083/health 60
wait_http ops-service http://127.0.0.1:8084/health 60
wait_http ops-service "http://${INTERNAL_LISTEN_ADDR:-127.0.0.1:8085}/health" 60
wait_http ratelimit-service http://127.0.0.1:8091/health 60

"$BIN_DIR/gateway-config" render --shape local --tls on \
  --wasm-dir "$WASM_DIR" --cert-dir "$root/certs" --out "$RUN_DIR/envoy.yaml"
start_proc envoy "$root/.venv/bin/envoy" -c "$RUN_DIR/envoy.yaml" \
  --log-level "${ENVOY_LOG_LEVEL:-info}" --disable-hot-restart
wait_http envoy http://127.0.0.1:8000/health 60
# Loading the wasm filters blocks Envoy's main thread for a few seconds, so
# the first health checks may have timed out: wait until every backend
# cluster is healthy again before handing out the demo key.
deadline=$((SECONDS + 30))
while (( SECONDS < deadline )); do
  clusters="$(curl -fsS --max-time 1 http://127.0.0.1:9901/clusters 2>/dev/null || true)"
  if [[ -n "$clusters" ]] && ! grep -q '::health_flags::/' <<<"$clusters"; then break; fi
  sleep 0.2
done
if grep -q '::health_flags::/' <<<"$clusters"; then
  err "some backends are not healthy yet:"
  grep '::health_flags::/' <<<"$clusters" >&2 || true
fi

# --- demo key -----------------------------------------------------------------
if ! key_out="$("$BIN_DIR/gatewayctl" keys create --client-id test123 2>>"$LOG_DIR/gatewayctl.log")"; then
  err "gatewayctl keys create failed; see $LOG_DIR/gatewayctl.log"
  shutdown 1
fi
API_KEY="$(printf '%s\n' "$key_out" | tail -n 1 | tr -d '[:space:]')"
(umask 077; printf '%s\n' "$API_KEY" > "$RUN_DIR/demo_api_key")
# The second worked example prices for client123, which needs its own key
# (or an admin-scoped one).
if ! key_out="$("$BIN_DIR/gatewayctl" keys create --client-id client123 2>>"$LOG_DIR/gatewayctl.log")"; then
  err "gatewayctl keys create failed; see $LOG_DIR/gatewayctl.log"
  shutdown 1
fi
CLIENT123_KEY="$(printf '%s\n' "$key_out" | tail -n 1 | tr -d '[:space:]')"

base=http://127.0.0.1:8000
cat <<BANNER

Borrow Rate & Locate Fee gateway is running.

  API           $base   (TLS: https://127.0.0.1:8443, self-signed: curl -k)
  Docs          $base/docs
  Metrics       $base/metrics   (no per-client series)
  Health        $base/health/detailed   (overall status only)
  Internal      http://${INTERNAL_LISTEN_ADDR:-127.0.0.1:8085}/metrics, /health/detailed   (client ids, dependency details)
  Logs          $LOG_DIR
  Demo API key  $API_KEY   (client test123; also in $RUN_DIR/demo_api_key)

Try it:

  export API_KEY=$API_KEY

  curl -s $base/api/v1/rates/AAPL -H "X-API-Key: \$API_KEY"

  curl -s -X POST $base/api/v1/calculate-locate -H "X-API-Key: \$API_KEY" \\
    -H 'Content-Type: application/json' \\
    -d '{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}'
  # -> total_fee 58.75 (borrow_cost 32.14, markup 1.61, transaction_fees 25.00)

  # GME for client123, with client123's own key:
  curl -s -X POST $base/api/v1/calculate-locate -H "X-API-Key: $CLIENT123_KEY" \\
    -H 'Content-Type: application/json' \\
    -d '{"ticker":"GME","position_value":250000,"loan_days":7,"client_id":"client123"}'
  # -> total_fee 3462.28 (3104.45 + 232.83 + 125.00)

  # A short-lived JWT instead of the key:
  TOKEN=\$(curl -s -X POST $base/api/v1/auth/token -H "X-API-Key: \$API_KEY" \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s $base/api/v1/rates/GME -H "Authorization: Bearer \$TOKEN"

Ctrl-C (or 'make stop') stops everything.
BANNER

# --- supervise ----------------------------------------------------------------
while true; do
  set +e
  wait -n
  set -e
  for name in "${!PIDS[@]}"; do
    if ! pid_alive "${PIDS[$name]}"; then
      status=0
      wait "${PIDS[$name]}" 2>/dev/null || status=$?
      err "$name (pid ${PIDS[$name]}) exited with status $status; last lines of $LOG_DIR/$name.log:"
      tail -n 20 "$LOG_DIR/$name.log" >&2 || true
      err "stopping the rest"
      shutdown 1
    fi
  done
done
