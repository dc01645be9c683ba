#!/usr/bin/env bash
# Black-box checks in a real browser: Debian's headless Chromium, driven by
# playwright-core (never `playwright`, which would download browsers of its
# own). docs.test.mjs: Swagger UI (/docs) registers a user, logs in,
# authorizes with the access token and calls GET /users/me, all through the
# page itself. reset.test.mjs: a reset link from a real mail (aiosmtpd's
# Maildir) is opened, a new password typed into tessera's page, and it logs in.
# passkey.test.mjs: a passkey is registered and used to sign in through a
# minimal page on tessera's origin, with Chromium's DevTools virtual
# authenticator (tessera's `webauthn.origin` is http://localhost:<port> here).
#
#   bash .ci/browser.sh [path/to/tessera]    (default: target/release/tessera,
#                                             built with `cargo build --release`
#                                             if missing)
#
# Installs what a fresh Debian machine lacks (as root): `chromium` (and
# `curl`) from apt, playwright-core from npm (.ci/browser/package-lock.json).
# Needs Node 20+. The screenshot is .ci/browser/screenshots/docs.png.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# shellcheck source=.ci/lib.sh
source .ci/lib.sh
resolve_binary "${1:-}"

log "tools"
command -v node >/dev/null || fail "node is missing (Node 20+ is required)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || fail "Node 20+ is required, found $(node --version)"
command -v npm >/dev/null || fail "npm is missing"
command -v curl >/dev/null || apt_install curl ca-certificates
smtp_python=
for python in /usr/bin/python3 python3; do
  if "$python" -c 'import aiosmtpd' 2>/dev/null; then smtp_python=$python; break; fi
done
if [ -z "$smtp_python" ]; then
  apt_install python3-aiosmtpd
  smtp_python=/usr/bin/python3
  "$smtp_python" -c 'import aiosmtpd' || fail "python3-aiosmtpd does not import"
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium"
  apt_install chromium
  [ -x /usr/bin/chromium ] || fail "apt installed chromium but /usr/bin/chromium is missing"
fi
# (stderr dropped: Debian's wrapper script may print a harmless shell warning
# about /dev/shm)
/usr/bin/chromium --version 2>/dev/null || fail "/usr/bin/chromium does not run"
echo "node $(node --version), npm $(npm --version)"

log "npm dependencies (.ci/browser)"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
(
  cd .ci/browser
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  else
    npm install --no-audit --no-fund --loglevel=error
  fi
) || fail "npm could not install .ci/browser's dependencies"

log "starting tessera ($binary)"
work=$(mktemp -d "${TMPDIR:-/tmp}/tessera-browser.XXXXXX")
server_pid=
sink_pid=
cleanup() {
  status=$?
  if [ -n "$sink_pid" ]; then kill "$sink_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$work/server.log" ]; then
    echo "--- last lines of the server log ---" >&2
    tail -n 40 "$work/server.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port=$(free_port)
base="http://127.0.0.1:$port"
smtp_port=$(free_port)
maildir="$work/maildir"
"$smtp_python" -m aiosmtpd -n -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Mailbox "$maildir" \
  >"$work/smtp.log" 2>&1 &
sink_pid=$!
(
  cd "$work"
  export TESSERA__SERVER__BIND="127.0.0.1:$port"
  export TESSERA__SERVER__DATA_DIR="$work/data"
  export TESSERA__DATABASE__URL="sqlite://$work/tessera.db"
  export TESSERA__JWT__SECRET="browser-check-secret-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  export TESSERA__PASSWORD__ARGON2_MEMORY_KIB=1024
  export TESSERA__PASSWORD__ARGON2_ITERATIONS=1
  export TESSERA__AUTH__LOGIN_MAX_FAILURES=1000000
  export TESSERA__AUTH__ADDRESS_MAX_FAILURES=1000000
  export TESSERA__SERVER__PUBLIC_URL="$base"
  export TESSERA__WEBAUTHN__RP_ID=localhost
  export TESSERA__WEBAUTHN__ORIGIN="http://localhost:$port"
  export TESSERA__EMAIL__TRANSPORT=smtp
  export TESSERA__EMAIL__SMTP_URL="smtp://127.0.0.1:$smtp_port"
  exec "$binary" serve
) >"$work/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 150); do
  if ! kill -0 "$server_pid" 2>/dev/null; then fail "tessera exited during startup"; fi
  if curl -fsS -o /dev/null --max-time 1 "$base/healthz" 2>/dev/null; then break; fi
  sleep 0.1
done
curl -fsS -o /dev/null --max-time 2 "$base/healthz" || fail "tessera did not answer $base/healthz within 15 s"
echo "tessera is up at $base"

log "Swagger UI in Chromium (.ci/browser/docs.test.mjs)"
start=$(date +%s)
TESSERA_BASE_URL="$base" timeout --kill-after=10 90 node .ci/browser/docs.test.mjs \
  || fail "the browser check of $base/docs failed (see above)"
echo "browser check passed in $(( $(date +%s) - start )) s"

log "password reset from a real mail in Chromium (.ci/browser/reset.test.mjs)"
start=$(date +%s)
TESSERA_BASE_URL="$base" TESSERA_MAILDIR="$maildir" timeout --kill-after=10 90 node .ci/browser/reset.test.mjs \
  || fail "the browser check of the password reset failed (see above)"
echo "reset check passed in $(( $(date +%s) - start )) s"

log "passkey registration and login in Chromium with a virtual authenticator (.ci/browser/passkey.test.mjs)"
start=$(date +%s)
TESSERA_BASE_URL="$base" TESSERA_PASSKEY_ORIGIN="http://localhost:$port" timeout --kill-after=10 90 node .ci/browser/passkey.test.mjs \
  || fail "the browser check of passkeys failed (see above)"
echo "passkey check passed in $(( $(date +%s) - start )) s"
