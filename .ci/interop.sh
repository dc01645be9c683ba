#!/usr/bin/env bash
# Interop: another service's validators agree with tessera about its tokens.
#
#   bash .ci/interop.sh [path/to/tessera]     (default target/release/tessera)
#
# Starts tessera twice, from fresh temporary folders: once signing with HS256
# (a shared secret), once with ES256 (a key pair from `tessera keys generate`,
# public keys from /.well-known/jwks.json). Each time it registers and logs in
# a user with curl (and creates a service client with `tessera client create`
# and gets its client-credentials token), then runs the Python (PyJWT) and
# Node.js (jose) validators of examples/interop/ against the real tokens and a
# set of forged ones made by
# examples/interop/python/forge.py, and asks tessera's own GET /auth/verify
# too. Fails if a validator refuses a valid token or accepts a forged one (or
# gives no verdict), or if tessera disagrees. Runs as root on a fresh Debian
# machine: it installs what is missing (curl, python3-venv, Node.js, PyJWT
# from PyPI, jose from npm).
#
# INTEROP_RUST=1 adds the Rust example (examples/interop/rust, actix-web +
# jsonwebtoken) as a third validator; its first build takes a few minutes.
set -euo pipefail
BIN="${1:-}"
# A path given on the command line is relative to the caller's directory.
if [ -n "$BIN" ] && [ -e "$BIN" ]; then BIN=$(realpath "$BIN"); fi
cd "$(dirname "$0")/.."
ROOT=$(pwd)
INTEROP="$ROOT/examples/interop"
BIN="${BIN:-target/release/tessera}"
started=$(date +%s)

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# Only the settings given below reach tessera.
while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^TESSERA_' || true)

# --- the binary ---------------------------------------------------------------
if [ ! -x "$BIN" ]; then
  [ "$BIN" = target/release/tessera ] || die "no executable tessera at $BIN"
  command -v cargo >/dev/null || die "cargo is missing and $BIN was not built"
  log "building $BIN (cargo build --release)"
  cargo build --release --locked
fi
BIN=$(realpath "$BIN")
"$BIN" --version

# --- tools --------------------------------------------------------------------
log "tools"
apt_missing=()
command -v curl >/dev/null || apt_missing+=(curl)
command -v python3 >/dev/null || apt_missing+=(python3)
if command -v python3 >/dev/null && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt_missing+=(python3-venv)
fi
command -v node >/dev/null || apt_missing+=(nodejs)
command -v npm >/dev/null || apt_missing+=(npm)
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "installing with apt-get: ${apt_missing[*]}"
  [ "$(id -u)" -eq 0 ] || die "need root to install ${apt_missing[*]}"
  apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null ||
    die "apt-get install ${apt_missing[*]} failed"
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] || die "Node.js >= 18 is needed, found $(node --version)"
echo "curl $(curl --version | head -1 | cut -d' ' -f2), $(python3 --version), node $(node --version), npm $(npm --version)"

VENV="$INTEROP/python/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || die "python3 -m venv failed"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$INTEROP/python/requirements.txt" ||
  die "pip install -r examples/interop/python/requirements.txt failed"
PY="$VENV/bin/python"
"$PY" -c 'import jwt, cryptography; print("PyJWT", jwt.__version__, "cryptography", cryptography.__version__)'
(cd "$INTEROP/node" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in examples/interop/node failed"
node -e 'console.log("jose", require("./examples/interop/node/node_modules/jose/package.json").version)'
RUST_BIN=""
if [ "${INTEROP_RUST:-0}" = 1 ]; then
  log "building the Rust example (examples/interop/rust)"
  command -v cargo >/dev/null || die "INTEROP_RUST=1 needs cargo"
  (cd "$INTEROP/rust" && CARGO_TARGET_DIR="$ROOT/target/interop-rust" cargo build --release --locked) ||
    die "building examples/interop/rust failed"
  RUST_BIN="$ROOT/target/interop-rust/release/tessera-interop-rust"
fi

# --- servers, always stopped ---------------------------------------------------
PIDS=()
DIRS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ ${#DIRS[@]} -gt 0 ]; then rm -rf "${DIRS[@]}"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# json FILE EXPR: a value from a JSON file, e.g. json body.json '["access_token"]'
json() { "$PY" -c 'import json, sys; print(eval("json.load(open(sys.argv[1]))" + sys.argv[2]))' "$1" "$2"; }

SERVER_LOG=""
show_log() { [ -n "$SERVER_LOG" ] && [ -f "$SERVER_LOG" ] && { echo "--- tessera log (last 30 lines):" >&2; tail -30 "$SERVER_LOG" >&2; }; }

ROWS=()
passed=0
failed=0

# verdict EXPECT EXIT_CODE: the table cell for a validator's exit status
# (0: as expected, 1: the opposite, anything else: no verdict).
verdict() {
  local expect=$1 code=$2 as_expected other
  if [ "$expect" = valid ]; then as_expected=accepted other=refused; else as_expected=refused other=accepted; fi
  case $code in
    0) echo "$as_expected" ;;
    1) echo "$other FAIL" ;;
    *) echo "error($code) FAIL" ;;
  esac
}

# row MODE CASE EXPECT PYTHON NODE RUST TESSERA: a table line (RUST only with INTEROP_RUST=1)
row() {
  if [ -n "$RUST_BIN" ]; then
    printf '%-6s | %-32s | %-7s | %-15s | %-15s | %-15s | %-15s' "$@"
  else
    printf '%-6s | %-32s | %-7s | %-15s | %-15s | %-15s' "$1" "$2" "$3" "$4" "$5" "$7"
  fi
}

# record MODE CASE EXPECT PYTHON NODE RUST TESSERA
record() {
  ROWS+=("$(row "$@")")
  local cell
  for cell in "$4" "$5" "$6" "$7"; do
    case $cell in
      *FAIL*) failed=$((failed + 1)) ;;
      -) ;;
      *) passed=$((passed + 1)) ;;
    esac
  done
}

# tessera_verify TOKEN EXPECT: the cell for GET /auth/verify
tessera_verify() {
  local status
  status=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "$BASE/auth/verify" || true)
  case "$2:$status" in
    valid:200 | invalid:401) [ "$2" = valid ] && echo accepted || echo refused ;;
    valid:401) echo "refused FAIL" ;;
    invalid:200) echo "accepted FAIL" ;;
    *) echo "http$status FAIL" ;;
  esac
}

# check MODE CASE EXPECT TOKEN: both validators and tessera on one token
check() {
  local mode=$1 name=$2 expect=$3 token=$4 py_code node_code py_out node_out
  local secret_args=()
  [ "$mode" = HS256 ] && secret_args=(--secret "$SECRET")
  set +e
  py_out=$("$PY" "$INTEROP/python/validate.py" --base "$BASE" --alg "$mode" "${secret_args[@]}" \
    --token "$token" --expect "$expect" 2>&1)
  py_code=$?
  node_out=$(node "$INTEROP/node/validate.mjs" --base "$BASE" --alg "$mode" "${secret_args[@]}" \
    --token "$token" --expect "$expect" 2>&1)
  node_code=$?
  local rust_out="" rust_cell="-"
  if [ -n "$RUST_BIN" ]; then
    rust_out=$("$RUST_BIN" validate --base "$BASE" --alg "$mode" "${secret_args[@]}" \
      --token "$token" --expect "$expect" 2>&1)
    rust_cell=$(verdict "$expect" "$?")
    rust_out=" | $rust_out"
  fi
  set -e
  local py_cell node_cell tessera_cell
  py_cell=$(verdict "$expect" "$py_code")
  node_cell=$(verdict "$expect" "$node_code")
  tessera_cell=$(tessera_verify "$token" "$expect")
  record "$mode" "$name" "$expect" "$py_cell" "$node_cell" "$rust_cell" "$tessera_cell"
  printf '%-6s %-32s expect %-7s | %s | %s%s\n' "$mode" "$name" "$expect" "$py_out" "$node_out" "$rust_out"
}

run_mode() {
  local mode=$1
  log "$mode: starting tessera"
  local dir port
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-interop.XXXXXX")
  DIRS+=("$dir")
  port=$(free_port)
  BASE="http://127.0.0.1:$port"
  SERVER_LOG="$dir/tessera.log"
  local settings=(
    "TESSERA__SERVER__BIND=127.0.0.1:$port"
    "TESSERA__SERVER__DATA_DIR=$dir/data"
    "TESSERA__SERVER__WORKERS=2"
    "TESSERA__DATABASE__URL=sqlite://$dir/tessera.db"
    "TESSERA__PASSWORD__ARGON2_MEMORY_KIB=1024"
    "TESSERA__PASSWORD__ARGON2_ITERATIONS=1"
  )
  local forge_keys=()
  if [ "$mode" = HS256 ]; then
    SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
    settings+=("TESSERA__JWT__SECRET=$SECRET")
    forge_keys=(--secret "$SECRET")
  else
    SECRET=""
    "$BIN" keys generate --algorithm ES256 --out "$dir/keys" >"$dir/keys.out" 2>&1 ||
      { cat "$dir/keys.out" >&2; die "tessera keys generate failed"; }
    settings+=("TESSERA__JWT__ALGORITHM=ES256" "TESSERA__JWT__PRIVATE_KEY_FILE=$dir/keys/private.pem")
    forge_keys=(--private-key "$dir/keys/private.pem" --public-key "$dir/keys/public.pem")
  fi
  (cd "$dir" && exec env "${settings[@]}" "$BIN" serve >"$SERVER_LOG" 2>&1) &
  local pid=$!
  PIDS+=("$pid")
  local up=""
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || { show_log; die "$mode: tessera exited during startup"; }
    if curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null; then up=1; break; fi
    sleep 0.2
  done
  [ -n "$up" ] || { show_log; die "$mode: tessera did not answer /healthz within 30 s"; }
  echo "tessera (pid $pid) is up on $BASE"

  log "$mode: register and log in"
  local status
  status=$(curl -sS -o "$dir/user.json" -w '%{http_code}' -X POST "$BASE/users" \
    -H 'Content-Type: application/json' \
    -d '{"username":"interop","email":"interop@example.com","password":"interop-password-1"}')
  [ "$status" = 201 ] || { cat "$dir/user.json" >&2; show_log; die "$mode: POST /users answered $status"; }
  login() {
    local out=$1 status
    status=$(curl -sS -o "$out" -w '%{http_code}' -X POST "$BASE/auth/login" \
      -H 'Content-Type: application/json' -d '{"username":"interop","password":"interop-password-1"}')
    [ "$status" = 200 ] || { cat "$out" >&2; show_log; die "$mode: POST /auth/login answered $status"; }
    json "$out" '["access_token"]'
  }
  local token
  token=$(login "$dir/login.json")
  echo "access token: ${token:0:24}... ($(json "$dir/login.json" '["expires_in"]') s)"

  log "$mode: kid and JWKS"
  local kid expected_kid
  kid=$("$PY" -c 'import jwt, sys; print(jwt.get_unverified_header(sys.argv[1])["kid"])' "$token")
  if [ "$mode" = HS256 ]; then
    expected_kid=$("$PY" "$INTEROP/python/forge.py" kid --alg HS256 --secret "$SECRET")
  else
    expected_kid=$("$PY" "$INTEROP/python/forge.py" kid --alg ES256 --public-key "$dir/keys/public.pem")
  fi
  local kid_cell=ok
  if [ "$kid" = "$expected_kid" ]; then
    echo "kid $kid = the one a validator derives from the key"
  else
    echo "kid $kid != $expected_kid, the one a validator derives from the key" >&2
    kid_cell="differs FAIL"
  fi
  curl -sS -D "$dir/jwks.headers" -o "$dir/jwks.json" "$BASE/.well-known/jwks.json"
  local cache_control keys_count jwks_cell=ok
  cache_control=$(grep -i '^cache-control:' "$dir/jwks.headers" | cut -d' ' -f2- | tr -d '\r' || true)
  keys_count=$(json "$dir/jwks.json" '["keys"].__len__()')
  echo "JWKS: $keys_count key(s), Cache-Control: ${cache_control:-none}"
  if [ "$mode" = HS256 ]; then
    [ "$keys_count" = 0 ] || jwks_cell="not empty FAIL"
  else
    local jwks_kid
    jwks_kid=$(json "$dir/jwks.json" '["keys"][0]["kid"]')
    [ "$jwks_kid" = "$kid" ] || jwks_cell="kid $jwks_kid FAIL"
    [[ "$cache_control" =~ max-age=[0-9]+ ]] || jwks_cell="no max-age FAIL"
  fi
  record "$mode" "kid-derived-from-key" "-" "-" "-" "-" "$kid_cell"
  record "$mode" "jwks-$([ "$mode" = HS256 ] && echo empty || echo lists-kid-with-max-age)" "-" "-" "-" "-" "$jwks_cell"

  log "$mode: validators"
  check "$mode" "login-token" valid "$token"

  log "$mode: a service client's token (tessera client create, then client credentials)"
  local creds client_id client_secret service_token
  creds=$(cd "$dir" && env "${settings[@]}" "$BIN" client create --name interop --scope interop:read 2>"$dir/client.err") ||
    { cat "$dir/client.err" >&2; die "$mode: tessera client create failed"; }
  client_id=$(printf '%s\n' "$creds" | sed -n 's/^client_id=//p')
  client_secret=$(printf '%s\n' "$creds" | sed -n 's/^client_secret=//p')
  status=$(curl -sS -o "$dir/service.json" -w '%{http_code}' -u "$client_id:$client_secret" \
    -d grant_type=client_credentials "$BASE/oauth/token")
  [ "$status" = 200 ] || { cat "$dir/service.json" >&2; show_log; die "$mode: POST /oauth/token answered $status"; }
  service_token=$(json "$dir/service.json" '["access_token"]')
  check "$mode" "service-token" valid "$service_token"
  local name expect forged
  "$PY" "$INTEROP/python/forge.py" tokens --alg "$mode" --token "$token" "${forge_keys[@]}" >"$dir/forged.tsv"
  while IFS=$'\t' read -r name expect forged; do
    check "$mode" "$name" "$expect" "$forged"
  done <"$dir/forged.tsv"

  if [ "$mode" = HS256 ]; then
    log "$mode: TOTP with pyotp as the authenticator (examples/interop/python/totp_flow.py)"
    local totp_cell=ok
    "$PY" "$INTEROP/python/totp_flow.py" --base "$BASE" --username interop --password interop-password-1 ||
      totp_cell="disagrees FAIL"
    record "$mode" "totp-with-pyotp" "-" "$totp_cell" "-" "-" "-"
  fi

  log "$mode: logout: stateless validation versus /auth/introspect"
  local other intro
  other=$(login "$dir/login2.json") # a token of its own to call /auth/introspect with
  intro=$(curl -sS -X POST "$BASE/auth/introspect" -H "Authorization: Bearer $other" \
    -H 'Content-Type: application/json' -d "{\"token\":\"$token\"}")
  echo "introspect before logout: $intro"
  local before_cell=active
  [[ "$intro" == *'"active":true'* ]] || before_cell="inactive FAIL"
  record "$mode" "introspect-before-logout" valid "-" "-" "-" "$before_cell"
  status=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$BASE/auth/logout" -H "Authorization: Bearer $token")
  [ "$status" = 204 ] || die "$mode: POST /auth/logout answered $status"
  # Stateless validation cannot see a logout: accepted until exp (documented).
  check "$mode" "logged-out-token-stateless" valid "$token"
  intro=$(curl -sS -X POST "$BASE/auth/introspect" -H "Authorization: Bearer $other" \
    -H 'Content-Type: application/json' -d "{\"token\":\"$token\"}")
  echo "introspect after logout: $intro"
  local after_cell=inactive
  [ "$intro" = '{"active":false}' ] || after_cell="active FAIL"
  record "$mode" "introspect-after-logout" invalid "-" "-" "-" "$after_cell"

  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "tessera (pid $pid) stopped"
}

run_mode HS256
run_mode ES256

log "summary (python: examples/interop/python/validate.py, node: examples/interop/node/validate.mjs,$([ -n "$RUST_BIN" ] && echo " rust: examples/interop/rust,") tessera: GET /auth/verify or POST /auth/introspect)"
printf '%s\n' "$(row mode case expect python node rust tessera)"
printf '%s\n' "$(row "------" "$(printf '%.0s-' {1..32})" "-------" "$(printf '%.0s-' {1..15})" "$(printf '%.0s-' {1..15})" "$(printf '%.0s-' {1..15})" "$(printf '%.0s-' {1..15})")"
printf '%s\n' "${ROWS[@]}"
echo
echo "interop finished in $(($(date +%s) - started)) s"
echo "interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || die "$failed check(s) failed: a validator or tessera disagreed with the expected outcome"
