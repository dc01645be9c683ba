#!/usr/bin/env bash
# The compose example, run: compose.yaml (PostgreSQL, two tessera replicas,
# nginx) with Debian's podman-compose, and checks that the replicas agree: a
# token from one works on the other, a logout on one is seen by the other's
# logout-sensitive routes, and nginx's forward-auth lets only valid tokens
# through. The PostgreSQL and nginx images are stand-ins assembled offline
# under Docker Hub's names (.ci/images/). Run alone with `bash .ci/compose.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh
source .ci/podman.sh

project=tessera-ci
network=${project}_default
work=$(mktemp -d)
compose=(podman-compose -p "$project" -f compose.yaml)

cleanup() {
  # The replicas' anonymous /data volumes go with their containers (-v);
  # podman-compose down -v removes only the named ones.
  podman ps -aq --filter "label=io.podman.compose.project=$project" | xargs -r podman rm -f -v -t 10 >/dev/null 2>&1 || true
  "${compose[@]}" down -v >/dev/null 2>&1 || true
  podman network rm -f "$network" >/dev/null 2>&1 || true
  podman volume rm -f "${project}_db-data" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

podman_compose_setup() {
  podman_setup
  command -v podman-compose >/dev/null || apt_install podman-compose
  podman-compose version 2>/dev/null | head -1 || true
}
step "podman and podman-compose (Debian's)" podman_compose_setup
step "base image debian:bookworm-slim (debootstrap)" debian_image
step "base image rust:1.95-slim-bookworm (debian + this machine's toolchain)" rust_image

# stand_in NAME CONTAINERFILE: builds an image from .ci/images/ under NAME
# unless it is current (a real one pulled from Docker Hub is used as it is).
stand_in() {
  local name=$1 file=.ci/images/$2 sum
  sum=$(cat "$file" .ci/images/*.sh | sha256sum | cut -c1-16)
  if image_current "$name" tessera.ci.source "$sum"; then
    echo "$name is current"
    return
  fi
  nice -n 19 podman build --pull=never --network host --format docker \
    --label tessera.ci.source="$sum" -f "$file" -t "$name" .ci/images >"$work/stand-in.log" 2>&1 \
    || { tail -30 "$work/stand-in.log" >&2; fail "podman build $name ($file) failed"; }
  echo "$name built from $file"
}
step "stand-in postgres:15-bookworm (Debian's postgresql-15)" \
  stand_in docker.io/library/postgres:15-bookworm postgres.Containerfile
step "stand-in nginx:stable-bookworm (Debian's nginx)" \
  stand_in docker.io/library/nginx:stable-bookworm nginx.Containerfile

build_image() {
  tessera_image localhost/tessera:latest >"$work/build.log" 2>&1 || {
    tail -40 "$work/build.log" >&2
    fail "podman build of the Dockerfile failed"
  }
  awk '/Using cache/ { n++ } END { print "  layers from the cache: " n + 0 }' "$work/build.log"
}
step "podman build tessera:latest (the Dockerfile; cached after .ci/image.sh)" build_image

export TESSERA_JWT_SECRET POSTGRES_PASSWORD TESSERA_HTTP_PORT TESSERA_1_PORT TESSERA_2_PORT
TESSERA_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
POSTGRES_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
TESSERA_HTTP_PORT=$(free_port)
TESSERA_1_PORT=$(free_port)
TESSERA_2_PORT=$(free_port)
proxy=http://127.0.0.1:$TESSERA_HTTP_PORT
one=http://127.0.0.1:$TESSERA_1_PORT
two=http://127.0.0.1:$TESSERA_2_PORT

# podman runs no healthchecks by itself here (no systemd timers), so
# `condition: service_healthy` cannot be waited for: start the database,
# wait for it, then the rest, in the order compose.yaml's depends_on gives.
compose_up() {
  local subnet deadline
  # podman-compose 1.0.3 ignores a network's ipam; make the network with the
  # subnet compose.yaml names, which tessera's trusted_proxies relies on.
  subnet=$(sed -n 's/^ *- subnet: *//p' compose.yaml)
  [ -n "$subnet" ] || fail "compose.yaml names no subnet for the default network"
  podman network exists "$network" || podman network create --subnet "$subnet" "$network" >/dev/null
  "${compose[@]}" up -d db >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "podman-compose up db failed"; }
  deadline=$((SECONDS + 60))
  until podman exec "${project}_db_1" pg_isready -q -h 127.0.0.1 -U tessera -d tessera 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { podman logs "${project}_db_1" >&2; fail "PostgreSQL did not get ready within 60 s"; }
    sleep 0.5
  done
  "${compose[@]}" up -d >>"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "podman-compose up failed"; }
  for url in "$one" "$two" "$proxy"; do
    if ! wait_http "$url/readyz" 60; then
      "${compose[@]}" logs >&2 2>&1 || true
      fail "$url/readyz did not answer 200 within 60 s"
    fi
  done
  podman ps --filter "label=io.podman.compose.project=$project" --format '  {{.Names}}  {{.Image}}  {{.Status}}'
  echo "ready: proxy $proxy, tessera-1 $one, tessera-2 $two"
}
step "podman-compose up (db, tessera-1, tessera-2, proxy)" compose_up

# call BASE METHOD PATH [JSON] [TOKEN]: the status; the body is in $work/body.
call() {
  local args=(-s -o "$work/body" -w '%{http_code}' -X "$2" "$1$3")
  [ -z "${4:-}" ] || args+=(-H 'Content-Type: application/json' -d "$4")
  [ -z "${5:-}" ] || args+=(-H "Authorization: Bearer $5")
  curl "${args[@]}"
}

expect() {
  local want=$1 got=$2 what=$3
  [ "$got" = "$want" ] || fail "$what: HTTP $got, expected $want: $(head -c 300 "$work/body")"
  echo "$what: $got"
}

login='{"username":"carol","password":"correct horse battery"}'
check_replicas() {
  local status
  status=$(call "$proxy" POST /users '{"username":"carol","email":"carol@example.com","password":"correct horse battery"}')
  expect 201 "$status" "POST /users through the proxy"
  status=$(call "$one" POST /auth/login "$login")
  expect 200 "$status" "POST /auth/login on tessera-1"
  token_a=$(json access_token <"$work/body")
  status=$(call "$two" POST /auth/login "$login")
  expect 200 "$status" "POST /auth/login on tessera-2"
  token_b=$(json access_token <"$work/body")
  status=$(call "$one" GET /users/me "" "$token_b")
  expect 200 "$status" "GET /users/me on tessera-1 with tessera-2's token"
  status=$(call "$two" GET /users/me "" "$token_a")
  expect 200 "$status" "GET /users/me on tessera-2 with tessera-1's token"
  [ "$(json username <"$work/body")" = carol ] || fail "GET /users/me: $(cat "$work/body")"
}
step "a token from one replica works on the other" check_replicas

introspect_active() {
  local status
  status=$(call "$1" POST /auth/introspect "{\"token\":\"$2\"}" "$3")
  [ "$status" = 200 ] || fail "POST /auth/introspect on $1: HTTP $status: $(head -c 300 "$work/body")"
  json active <"$work/body"
}

check_logout() {
  local status active
  active=$(introspect_active "$two" "$token_a" "$token_b")
  echo "before the logout, tessera-2 introspects tessera-1's token: active=$active"
  [ "$active" = True ] || fail "tessera-2 finds tessera-1's token inactive before any logout"
  status=$(call "$one" POST /auth/logout "" "$token_a")
  expect 204 "$status" "POST /auth/logout on tessera-1"
  active=$(introspect_active "$two" "$token_a" "$token_b")
  echo "after the logout, tessera-2 introspects it: active=$active"
  [ "$active" = False ] || fail "tessera-2 still finds the token logged out on tessera-1 active"
  status=$(call "$two" POST /auth/logout "" "$token_a")
  expect 401 "$status" "POST /auth/logout on tessera-2 with the logged-out token"
  status=$(call "$two" GET /users/me "" "$token_b")
  expect 200 "$status" "GET /users/me on tessera-2 with the other session's token"
}
step "a logout on one replica is seen by the other" check_logout

check_forward_auth() {
  local status
  status=$(call "$proxy" GET /app/)
  expect 401 "$status" "GET /app/ through nginx without a token"
  status=$(call "$proxy" GET /app/ "" "$token_b")
  expect 200 "$status" "GET /app/ through nginx with a token"
  grep -q "user $(python3 -c 'import base64, json, sys; p = sys.argv[1].split(".")[1]; print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["sub"])' "$token_b"), role user" "$work/body" \
    || fail "the application behind forward-auth got: $(cat "$work/body")"
  echo "  the application saw: $(cat "$work/body")"
}
step "nginx forward-auth (auth_request to GET /auth/verify)" check_forward_auth

step "podman-compose down" cleanup
trap - EXIT
step_summary
echo "compose checks passed"
