# Shared by .ci/image.sh and .ci/compose.sh (source it after lib.sh; it
# defines functions only): podman from Debian, its configuration for this kind
# of machine, timed steps, and the base images the Dockerfile and compose.yaml
# name, assembled offline (no container registry is reachable here) from
# debootstrap and the machine's own Rust toolchain.

ci_cache=${TESSERA_CI_CACHE:-$HOME/.cache/tessera-ci}

# Installs podman and writes its configuration. Here crun refuses setrlimit
# and cgroups are v1/hybrid, so: runc, no default ulimits, no pids limit;
# cgroupfs and a file event log because there is no systemd to talk to.
podman_setup() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || missing+=(runc)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v iptables >/dev/null || missing+=(iptables)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  [ -x /usr/lib/cni/dnsname ] || missing+=(golang-github-containernetworking-plugin-dnsname)
  command -v curl >/dev/null || missing+=(curl)
  command -v ss >/dev/null || missing+=(iproute2)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
  mkdir -p "$ci_cache"
  cat >"$ci_cache/containers.conf" <<'EOF'
[containers]
default_ulimits = []
pids_limit = 0

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  export CONTAINERS_CONF="$ci_cache/containers.conf"
  podman --version
}

# step NAME COMMAND...: runs COMMAND, prints how long it took and keeps the
# time for step_summary.
step_names=()
step_times=()
step() {
  local name=$1 started finished
  shift
  log "$name"
  started=$(date +%s.%N)
  "$@"
  finished=$(date +%s.%N)
  step_names+=("$name")
  step_times+=("$(awk -v a="$started" -v b="$finished" 'BEGIN { printf "%.1f", b - a }')")
  printf -- '-- %s: %s s\n' "$name" "${step_times[-1]}"
}

step_summary() {
  local i
  log "time per step (s)"
  for i in "${!step_names[@]}"; do
    printf '%8s  %s\n' "${step_times[$i]}" "${step_names[$i]}"
  done
}

# An image under NAME that is either real (pulled from a registry on some
# other machine: no tessera.ci label, used as it is) or ours with the given
# label value. Returns 0 when NAME can be used as it is.
image_current() {
  local name=$1 key=$2 value=$3 have
  podman image exists "$name" || return 1
  have=$(podman image inspect --format "{{ index .Labels \"$key\" }}" "$name" 2>/dev/null) || return 1
  case "$have" in
    "" | "<no value>") return 0 ;;  # a real image: keep it
    "$value") return 0 ;;
    *) return 1 ;;
  esac
}

# docker.io/library/debian:bookworm-slim from a debootstrap minbase rootfs,
# trimmed like Docker Hub's slim image (no docs, man pages, locales or apt
# lists). The rootfs tarball is cached; TESSERA_CI_REFRESH=1 (or an age of
# 30 days) makes a new one.
debian_image() {
  local name=docker.io/library/debian:bookworm-slim
  local tarball=$ci_cache/debian-bookworm-minbase.tar rootfs sum
  if [ "${TESSERA_CI_REFRESH:-0}" = 1 ] || [ -z "$(find "$tarball" -mtime -30 2>/dev/null)" ]; then
    rootfs=$(mktemp -d "$ci_cache/rootfs.XXXXXX")
    echo "debootstrap --variant=minbase bookworm (cached afterwards in $tarball)"
    if ! debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$rootfs.log" 2>&1; then
      tail -20 "$rootfs.log" >&2
      rm -rf "$rootfs" "$rootfs.log"
      fail "debootstrap failed"
    fi
    rm -rf "$rootfs".log "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" . || fail "cannot pack the rootfs"
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  else
    echo "rootfs from the cache: $tarball"
  fi
  sum=$(sha256sum "$tarball" | cut -c1-16)
  if image_current "$name" tessera.ci.rootfs "$sum"; then
    echo "$name is current"
    return
  fi
  podman import --quiet --change "LABEL tessera.ci.rootfs=$sum" --change 'CMD ["bash"]' \
    "$tarball" "$name" >/dev/null || fail "podman import $name failed"
  echo "$name imported"
}

# docker.io/library/rust:1.95-slim-bookworm from debian:bookworm-slim and the
# toolchain rustup installed on this machine (.ci/images/rust.Containerfile).
rust_image() {
  local name=docker.io/library/rust:1.95-slim-bookworm sysroot version context
  command -v rustc >/dev/null || fail "rustc is missing: the build image is assembled from the machine's toolchain"
  version=$(rustc --version)
  case "$version" in
    "rustc 1.95."*) ;;
    *) fail "the Dockerfile builds with Rust 1.95, but this machine has $version" ;;
  esac
  if image_current "$name" tessera.ci.rustc "$version"; then
    echo "$name is current"
    return
  fi
  sysroot=$(rustc --print sysroot)
  context=$(mktemp -d)
  (cd "$sysroot" && tar -cf "$context/toolchain.tar" bin/cargo bin/rustc bin/rustdoc \
    lib/librustc_driver-*.so lib/libLLVM* lib/rustlib/etc lib/rustlib/x86_64-unknown-linux-gnu) \
    || fail "cannot pack the toolchain at $sysroot"
  cp /etc/ssl/certs/ca-certificates.crt "$context/host-ca.crt"
  cp .ci/images/rust.Containerfile "$context/Containerfile"
  if ! nice -n 19 podman build --pull=never --network host --format docker \
    --build-arg RUST_VERSION="$(rustc --version | cut -d' ' -f2)" \
    --label tessera.ci.rustc="$version" -t "$name" "$context" >"$context.log" 2>&1; then
    tail -30 "$context.log" >&2
    rm -rf "$context" "$context.log"
    fail "podman build $name failed"
  fi
  rm -f "$context.log"
  rm -rf "$context"
  echo "$name built from $version"
}

# tessera_image NAME: builds the Dockerfile as NAME, exactly as a plain
# `docker build` does (Cargo.toml's fat LTO: thin LTO with 16 codegen units
# measured no faster on two shared cores). The registry volume caches
# crates.io downloads across runs; podman's own layer cache keeps the
# dependency layer while Cargo.lock is unchanged.
tessera_image() {
  mkdir -p "$ci_cache/cargo-registry"
  nice -n 19 podman build --pull=never --network host --format docker \
    -v "$ci_cache/cargo-registry:/usr/local/cargo/registry" -t "$1" .
}

# json FIELD: that top-level field of the JSON object on stdin.
json() {
  python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL SECONDS: until URL answers 200, or fail.
wait_http() {
  local url=$1 deadline=$((SECONDS + $2))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ]; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}
