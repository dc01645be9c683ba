#!/usr/bin/env bash
# The key pairs `tessera keys generate` writes must load in the tools other
# services use: OpenSSL (Debian's 3.0) and Python's `cryptography`.
# Usage: .ci/keys.sh [path/to/tessera]
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib.sh

resolve_binary "${1:-}"
command -v openssl >/dev/null || apt_install openssl
python3 -c 'import cryptography' 2>/dev/null || apt_install python3-cryptography

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for algorithm in ES256 RS256 EdDSA; do
  out="$work/$algorithm"
  "$binary" keys generate --algorithm "$algorithm" --out "$out" 2>/dev/null \
    || fail "tessera keys generate --algorithm $algorithm failed"
  openssl pkey -in "$out/private.pem" -noout \
    || fail "openssl refuses the $algorithm private key"
  openssl pkey -pubin -in "$out/public.pem" -noout \
    || fail "openssl refuses the $algorithm public key"
  python3 - "$out" <<'PY' || fail "Python's cryptography refuses the $algorithm key pair"
import sys
from cryptography.hazmat.primitives import serialization

folder = sys.argv[1]
with open(f"{folder}/private.pem", "rb") as f:
    private = serialization.load_pem_private_key(f.read(), password=None)
with open(f"{folder}/public.pem", "rb") as f:
    public = serialization.load_pem_public_key(f.read())
raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
assert private.public_key().public_bytes(*raw) == public.public_bytes(*raw), "halves differ"
PY
  echo "$algorithm: openssl and cryptography load both halves, and they agree"
done
