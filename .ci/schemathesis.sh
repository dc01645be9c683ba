#!/usr/bin/env bash
# Black-box property-based check of the running service against its own
# OpenAPI document (/openapi.json) with Schemathesis: no 5xx, and every
# response's status, content type, headers and body as documented, plus
# Schemathesis's other checks (`--checks all`: valid requests accepted,
# invalid ones rejected, auth not ignored, ...).
#
#   bash .ci/schemathesis.sh [path/to/tessera]   (default: target/release/tessera,
#                                                 built with `cargo build --release`
#                                                 if missing)
#
# Environment (optional): ST_MAX_EXAMPLES (default 50, per operation and
# phase), ST_SEED (replay a run with the seed it printed).
#
# Installs what a fresh Debian machine lacks (as root): curl and python3-venv
# from apt if missing, schemathesis (pinned below) from PyPI into a venv under
# ~/.cache/tessera-ci/.
#
# Three runs: the two below, because some operations change the state that
# the rest relies on, and a third, `stateful` (see there), for the operations
# that take values only tessera can have made:
#
#  1. Authenticated, `-H "Authorization: Bearer <token>"` of a user registered
#     and logged in with curl, over every operation EXCEPT the four that can
#     end that token or that user:
#       POST /auth/logout          revokes the token (jti);
#       POST /auth/logout-all      revokes every token of the user;
#       PUT /users/{id}/password   revokes every earlier token of the user;
#       DELETE /users/{id}         deletes the user (its tokens then get 401).
#     Schemathesis reuses ids it saw in responses (GET /users/me, POST /users)
#     in later requests, so it would soon aim these at the caller itself, and
#     every later case would get 401, which proves nothing. PATCH /users/{id}
#     stays in: it can rename the caller, which ends no token. Starting and
#     removing TOTP run in the second run too: they ask for the password.
#  2. Those four operations alone, each test case with a user and token of its
#     own (a hook, written to the temp dir, registers and logs in a fresh user
#     per case); in every other schema-valid case the path's {id} is that
#     user's own id (and for the password change, its real current password;
#     for logout, its real refresh token), so the success paths (204) are
#     exercised as well as 401/403/404/422.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-50}
PHASE_SECS=300 # hard bound of each of the runs (they take ~10-60 s)
REQUEST_SECS=10

# shellcheck source=.ci/lib.sh
source .ci/lib.sh
resolve_binary "${1:-}"

log "tools"
command -v curl >/dev/null || apt_install curl ca-certificates
command -v python3 >/dev/null || apt_install python3 python3-venv

venv="${XDG_CACHE_HOME:-$HOME/.cache}/tessera-ci/schemathesis-$SCHEMATHESIS_VERSION"
st="$venv/bin/schemathesis"
if ! "$st" --version 2>/dev/null | grep -qF "version $SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's own python3 needs python3-venv (ensurepip) for this.
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv" || fail "python3 -m venv $venv failed"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" \
    || { rm -rf "$venv"; fail "pip install schemathesis==$SCHEMATHESIS_VERSION failed"; }
fi
"$st" --version || fail "$st does not run"
py="$venv/bin/python"

log "starting tessera ($binary)"
work=$(mktemp -d "${TMPDIR:-/tmp}/tessera-schemathesis.XXXXXX")
server_pid=
cleanup() {
  status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$work/server.log" ]; then
    echo "--- server log: warnings and errors (last 40) ---" >&2
    grep -E ' (WARN|ERROR) ' "$work/server.log" | tail -n 40 >&2 || true
    echo "--- server log: last 10 lines ---" >&2
    tail -n 10 "$work/server.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base="http://127.0.0.1:$port"
(
  cd "$work"
  export TESSERA__SERVER__BIND="127.0.0.1:$port"
  export TESSERA__SERVER__DATA_DIR="$work/data"
  export TESSERA__DATABASE__URL="sqlite://$work/tessera.db"
  export TESSERA__JWT__SECRET="schemathesis-secret-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  export TESSERA__PASSWORD__ARGON2_MEMORY_KIB=1024
  export TESSERA__PASSWORD__ARGON2_ITERATIONS=1
  export TESSERA__AUTH__LOGIN_MAX_FAILURES=1000000
  export TESSERA__AUTH__ADDRESS_MAX_FAILURES=1000000
  exec "$binary" serve
) >"$work/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 150); do
  if ! kill -0 "$server_pid" 2>/dev/null; then fail "tessera exited during startup"; fi
  if curl -fsS -o /dev/null --max-time 1 "$base/healthz" 2>/dev/null; then break; fi
  sleep 0.1
done
curl -fsS -o /dev/null --max-time 2 "$base/healthz" || fail "tessera did not answer $base/healthz within 15 s"
curl -fsS -o /dev/null --max-time 5 "$base/openapi.json" || fail "GET $base/openapi.json failed"
echo "tessera is up at $base"

log "register and log in with curl"
user="st_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
password="schemathesis password $(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
curl -fsS --max-time 10 -o "$work/user.json" -X POST "$base/users" \
  -H 'Content-Type: application/json' \
  -d "{\"username\": \"$user\", \"email\": \"$user@example.com\", \"password\": \"$password\"}" \
  || fail "POST /users (registering $user) failed"
curl -fsS --max-time 10 -o "$work/tokens.json" -X POST "$base/auth/login" \
  -H 'Content-Type: application/json' \
  -d "{\"username\": \"$user\", \"password\": \"$password\"}" \
  || fail "POST /auth/login (as $user) failed"
token=$("$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["access_token"])' "$work/tokens.json") \
  || fail "no access_token in the login response: $(cat "$work/tokens.json")"
curl -fsS --max-time 10 -o /dev/null "$base/users/me" -H "Authorization: Bearer $token" \
  || fail "GET /users/me with the new token failed"
echo "logged in as $user"

# The hook of both runs: generated passwords that tessera's compiled-in list
# of common passwords refuses (422, as the contract says; the schema cannot
# express a list of 11,611 values) are not drawn.
mkdir -p "$work/hooks"
cat >"$work/hooks/tessera_passwords.py" <<'PY'
"""Schemathesis hook for tessera: skip request bodies whose password is one of
the common passwords tessera refuses (src/domain/common_passwords.txt)."""

import os

import schemathesis

with open(os.environ["TESSERA_COMMON_PASSWORDS"], encoding="utf-8") as listing:
    _COMMON = {line.strip().lower() for line in listing if line.strip()}


@schemathesis.hook
def filter_body(ctx, body):
    if not isinstance(body, dict):
        return True
    return not any(
        isinstance(body.get(field), str) and body[field].lower() in _COMMON
        for field in ("password", "new_password")
    )
PY
export TESSERA_COMMON_PASSWORDS="$PWD/src/domain/common_passwords.txt"

# The hook of run 2: a fresh user and token for every test case.
cat >"$work/hooks/tessera_fresh_user.py" <<'PY'
"""Schemathesis auth for tessera's destructive operations: every test case
gets a user of its own, registered and logged in just before it, so no case
can spoil another's token."""

import itertools
import json
import os
import urllib.request
import uuid

import schemathesis
from schemathesis.core.parameters import ParameterLocation

import tessera_passwords  # noqa: F401 (its hook applies to this run too)

BASE = os.environ["TESSERA_BASE_URL"]
_serial = itertools.count()


def _post(path, body):
    request = urllib.request.Request(
        BASE + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _positive_at(case, location):
    meta = case.meta
    return meta is None or not meta.is_negative_at(location)


@schemathesis.auth(refresh_interval=None)  # no caching: get() for every case
class FreshUser:
    def get(self, case, context):
        serial = next(_serial)
        name = f"st_fresh_{serial}_{uuid.uuid4().hex[:8]}"
        password = f"fresh password {uuid.uuid4().hex}"
        user = _post("/users", {"username": name, "email": f"{name}@example.com", "password": password})
        tokens = _post("/auth/login", {"username": name, "password": password})
        return {
            "serial": serial,
            "id": user["id"],
            "password": password,
            "access": tokens["access_token"],
            "refresh": tokens["refresh_token"],
        }

    def set(self, case, data, context):
        if case.headers is None:
            case.headers = {}
        case.headers["Authorization"] = f"Bearer {data['access']}"
        # Starting or removing TOTP asks for the account's own password,
        # which the schema cannot know: every schema-valid case carries it.
        if (
            case.operation.path == "/auth/mfa/totp"
            and isinstance(case.body, dict)
            and "password" in case.body
            and _positive_at(case, ParameterLocation.BODY)
        ):
            case.body["password"] = data["password"]
        # Every other case aims at the user itself, with its real secrets,
        # unless that part of the request is meant to be invalid.
        if data["serial"] % 2:
            return
        at_self = False
        if case.path_parameters and "id" in case.path_parameters and _positive_at(case, ParameterLocation.PATH):
            case.path_parameters["id"] = data["id"]
            at_self = True
        if isinstance(case.body, dict) and _positive_at(case, ParameterLocation.BODY):
            if at_self and case.operation.path.endswith("/password"):
                # The schema cannot say that `current_password`, optional
                # for an admin, is required when users change their own
                # password (422 without it is the contract, not a bug), so
                # a self-service case always carries the real one.
                case.body["current_password"] = data["password"]
            if "refresh_token" in case.body:
                case.body["refresh_token"] = data["refresh"]

PY

destructive=(--include-operation-id logout --include-operation-id logout_all
  --include-operation-id change_password --include-operation-id delete_user
  --include-operation-id start_totp --include-operation-id remove_totp)
# Operations that take a value only tessera can have made, or a pair of
# fields, which no schema states: a page `cursor` (another string is 422);
# client credentials in a body (one without the other is refused); an
# OAuth grant (a made-up refresh token is invalid_grant, 400 by RFC 6749
# §5.2); a WebAuthn credential (an authenticator's signed answer to the
# ceremony's challenge). Schemathesis's coverage phase sends exactly such
# "schema-valid" values, so these run on their own with every check but
# positive_data_acceptance (no 5xx, statuses, content types, headers and
# bodies as documented, negative data refused). The API tests cover their
# success paths; .ci/oauth.sh runs the OAuth ones through Authlib.
stateful=(--include-operation-id list_users --include-operation-id introspect
  --include-operation-id oauth_token --include-operation-id oauth_revoke
  --include-operation-id finish_passkey_registration
  --include-operation-id finish_passkey_login)
excluded=(--exclude-operation-id logout --exclude-operation-id logout_all
  --exclude-operation-id change_password --exclude-operation-id delete_user
  --exclude-operation-id start_totp --exclude-operation-id remove_totp
  --exclude-operation-id list_users --exclude-operation-id introspect
  --exclude-operation-id oauth_token --exclude-operation-id oauth_revoke
  --exclude-operation-id finish_passkey_registration
  --exclude-operation-id finish_passkey_login)
common=(--checks all --max-examples "$MAX_EXAMPLES" --request-timeout "$REQUEST_SECS"
  --output-sanitize false --no-color --report json)
if [ -n "${ST_SEED:-}" ]; then common+=(--seed "$ST_SEED"); fi

total_cases=0
failed_runs=()
# run NAME [schemathesis options...]: one bounded run, from the temp dir (so
# nothing it writes lands in the repository); counts its test cases.
run() {
  local name=$1
  shift
  local reports="$work/reports-$name"
  log "schemathesis run $name"
  local status=0
  (cd "$work" && timeout --kill-after=15 "$PHASE_SECS" "$st" run "$base/openapi.json" \
    "${common[@]}" --report-dir "$reports" "$@") || status=$?
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "ERROR: schemathesis run $name did not finish within $PHASE_SECS s" >&2
    failed_runs+=("$name (timed out)")
    return
  fi
  local report
  report=$(ls "$reports"/*.json 2>/dev/null | head -n 1 || true)
  local cases=0
  if [ -n "$report" ]; then
    cases=$("$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["test_cases"]["generated"])' "$report")
  fi
  echo "run $name: $cases test cases, schemathesis exit code $status"
  total_cases=$((total_cases + cases))
  if [ "$status" -ne 0 ]; then
    failed_runs+=("$name (exit $status)")
  elif [ "$cases" -eq 0 ]; then
    failed_runs+=("$name (no test case ran)")
  fi
}

start=$(date +%s)
PYTHONPATH="$work/hooks" SCHEMATHESIS_HOOKS=tessera_passwords \
  run authenticated -H "Authorization: Bearer $token" "${excluded[@]}"
PYTHONPATH="$work/hooks" SCHEMATHESIS_HOOKS=tessera_passwords \
  run stateful -H "Authorization: Bearer $token" "${stateful[@]}" \
  --exclude-checks positive_data_acceptance
TESSERA_BASE_URL="$base" PYTHONPATH="$work/hooks" SCHEMATHESIS_HOOKS=tessera_fresh_user \
  run destructive "${destructive[@]}"

log "summary"
echo "schemathesis: $total_cases test cases in $(( $(date +%s) - start )) s against $base/openapi.json"
if [ ${#failed_runs[@]} -gt 0 ]; then
  fail "schemathesis found problems in: ${failed_runs[*]} (details above)"
fi
# The closing line in the plain 'N passed, N failed' form.
echo "schemathesis: 3 passed, 0 failed"
