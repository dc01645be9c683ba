# Shared by the black-box CI scripts (source it; it defines functions only):
# messages, finding or building the tessera binary, and apt installs.

fail() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
log() { printf '\n==> %s\n' "$*"; }

# Sets $binary to the absolute path of the tessera to test: $1 if given
# (which must exist), else target/release/tessera, built if missing.
resolve_binary() {
  binary=${1:-target/release/tessera}
  if [ ! -x "$binary" ]; then
    if [ -n "${1:-}" ]; then fail "no executable tessera binary at $binary"; fi
    log "building $binary (cargo build --release)"
    command -v cargo >/dev/null || fail "cargo is missing and $binary is not built"
    cargo build --release || fail "cargo build --release failed"
    [ -x "$binary" ] || fail "cargo build --release did not produce $binary"
  fi
  binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
}

# apt-get install, running `apt-get update` once per script first.
apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then
    apt-get update -qq || fail "apt-get update failed"
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || fail "apt-get install $* failed"
}
