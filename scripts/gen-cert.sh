#!/usr/bin/env bash
# Create the gateway's self-signed TLS certificate (ECDSA P-256, SAN
# localhost and 127.0.0.1) once. The directory is gitignored; the key never
# leaves this machine. Usage: scripts/gen-cert.sh [DIR] (default: certs/).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/certs}"
crt="$dir/gateway.crt"
key="$dir/gateway.key"
if [[ -s "$crt" && -s "$key" ]] && openssl x509 -in "$crt" -noout -checkend 86400 >/dev/null 2>&1; then
  exit 0
fi
command -v openssl >/dev/null || { echo "gen-cert: openssl is required (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
chmod 700 "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$key.tmp" -out "$crt.tmp" -days 365 \
  -subj "/CN=localhost/O=Borrow Rate Gateway (development)" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:FALSE" \
  -addext "keyUsage=critical,digitalSignature" \
  -addext "extendedKeyUsage=serverAuth" >/dev/null 2>&1
mv "$key.tmp" "$key"
mv "$crt.tmp" "$crt"
chmod 600 "$key"
chmod 644 "$crt"
echo "gen-cert: created self-signed certificate $crt"
