#!/usr/bin/env bash
# OAuth 2.0 interop: a service meets tessera through a real OAuth client
# library (Authlib's OAuth2Session, with requests and PyJWT).
#
#   bash .ci/oauth.sh [path/to/tessera]     (default target/release/tessera)
#
# Starts tessera (HS256, then ES256) from a fresh temporary folder with
# server.public_url set to the address it listens on, creates a service
# client with `tessera client create`, registers and logs in a user with
# curl, then runs examples/oauth/oauth_client.py: discovery through
# /.well-known/oauth-authorization-server (the issuer must be the URL asked
# for), a client-credentials token (checked with PyJWT against the JWKS
# under ES256), introspection of the user's tokens, revocation of the
# refresh token, introspection again (inactive), and a wrong secret refused
# with invalid_client. Installs what is missing (curl, python3-venv, the
# Python packages of examples/oauth/requirements.txt from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/lib.sh
. .ci/lib.sh
resolve_binary "${1:-}"
ROOT=$(pwd)

# Only the settings given below reach tessera.
while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^TESSERA_' || true)

log "tools"
command -v curl >/dev/null || apt_install curl
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
VENV="$ROOT/target/oauth-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || fail "python3 -m venv failed"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r examples/oauth/requirements.txt ||
  fail "pip install -r examples/oauth/requirements.txt failed"
PY="$VENV/bin/python"
"$PY" -c 'import authlib, jwt, requests; print("Authlib", authlib.__version__, "PyJWT", jwt.__version__, "requests", requests.__version__)'

PID=""
DIR=""
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  if [ -n "$DIR" ]; then rm -rf "$DIR"; fi
}
trap cleanup EXIT

run_mode() {
  local mode=$1
  log "$mode: starting tessera"
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/tessera-oauth.XXXXXX")
  local port base
  port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  base="http://127.0.0.1:$port"
  local settings=(
    "TESSERA__SERVER__BIND=127.0.0.1:$port"
    "TESSERA__SERVER__PUBLIC_URL=$base"
    "TESSERA__SERVER__DATA_DIR=$DIR/data"
    "TESSERA__SERVER__WORKERS=2"
    "TESSERA__DATABASE__URL=sqlite://$DIR/tessera.db"
    "TESSERA__PASSWORD__ARGON2_MEMORY_KIB=1024"
    "TESSERA__PASSWORD__ARGON2_ITERATIONS=1"
  )
  if [ "$mode" = ES256 ]; then
    "$binary" keys generate --algorithm ES256 --out "$DIR/keys" >/dev/null 2>&1 ||
      fail "tessera keys generate failed"
    settings+=("TESSERA__JWT__ALGORITHM=ES256" "TESSERA__JWT__PRIVATE_KEY_FILE=$DIR/keys/private.pem")
  else
    settings+=("TESSERA__JWT__SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')")
  fi
  (cd "$DIR" && exec env "${settings[@]}" "$binary" serve >"$DIR/tessera.log" 2>&1) &
  PID=$!
  local up=""
  for _ in $(seq 1 150); do
    kill -0 "$PID" 2>/dev/null || { tail -30 "$DIR/tessera.log" >&2; fail "$mode: tessera exited during startup"; }
    if curl -fsS -o /dev/null "$base/healthz" 2>/dev/null; then up=1; break; fi
    sleep 0.2
  done
  [ -n "$up" ] || { tail -30 "$DIR/tessera.log" >&2; fail "$mode: tessera did not answer /healthz within 30 s"; }
  echo "tessera (pid $PID) is up on $base"

  log "$mode: a service client (tessera client create) and a user"
  local creds client_id client_secret status
  creds=$(cd "$DIR" && env "${settings[@]}" "$binary" client create --name oauth-ci --scope introspect) ||
    fail "$mode: tessera client create failed"
  client_id=$(printf '%s\n' "$creds" | sed -n 's/^client_id=//p')
  client_secret=$(printf '%s\n' "$creds" | sed -n 's/^client_secret=//p')
  [ -n "$client_id" ] && [ -n "$client_secret" ] || fail "$mode: tessera client create printed no credentials"
  echo "client_id $client_id"
  status=$(curl -sS -o "$DIR/user.json" -w '%{http_code}' -X POST "$base/users" \
    -H 'Content-Type: application/json' \
    -d '{"username":"oauth","email":"oauth@example.com","password":"oauth-password-1"}')
  [ "$status" = 201 ] || { cat "$DIR/user.json" >&2; fail "$mode: POST /users answered $status"; }
  status=$(curl -sS -o "$DIR/login.json" -w '%{http_code}' -X POST "$base/auth/login" \
    -H 'Content-Type: application/json' -d '{"username":"oauth","password":"oauth-password-1"}')
  [ "$status" = 200 ] || { cat "$DIR/login.json" >&2; fail "$mode: POST /auth/login answered $status"; }
  local access refresh
  access=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["access_token"])' "$DIR/login.json")
  refresh=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["refresh_token"])' "$DIR/login.json")

  log "$mode: Authlib: discover, client credentials, introspect, revoke"
  # `=` joins each value to its option: a random secret or refresh token may
  # begin with `-`, which argparse would take for an option.
  "$PY" examples/oauth/oauth_client.py --issuer="$base" --client-id="$client_id" \
    --client-secret="$client_secret" --user-token="$access" --user-refresh="$refresh" ||
    { tail -30 "$DIR/tessera.log" >&2; fail "$mode: the OAuth client disagreed with tessera"; }

  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
  rm -rf "$DIR"
  DIR=""
}

run_mode HS256
run_mode ES256
echo "oauth: passed"
