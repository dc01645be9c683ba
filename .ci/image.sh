#!/usr/bin/env bash
# The container image, built and run: builds the real Dockerfile with podman
# (base images assembled offline, see .ci/podman.sh) and checks what a
# `docker run` user relies on: a non-root process with only /data writable,
# the API through the published port, state kept in the volume across
# containers, the HEALTHCHECK, a clean stop, the production refusal without a
# key, and the image size. Run alone with `bash .ci/image.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/lib.sh
source .ci/podman.sh

image=localhost/tessera:ci
max_image_mb=40
shutdown_timeout=10
run_id=tessera-ci-$$
volume=$run_id-data
work=$(mktemp -d)
containers=()

cleanup() {
  local c
  for c in "${containers[@]}"; do podman rm -f -v -t 0 "$c" >/dev/null 2>&1 || true; done
  podman volume rm -f "$volume" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

step "podman (Debian's, with runc)" podman_setup
step "base image debian:bookworm-slim (debootstrap)" debian_image
step "base image rust:1.95-slim-bookworm (debian + this machine's toolchain)" rust_image

build_image() {
  tessera_image "$image" >"$work/build.log" 2>&1 || {
    tail -40 "$work/build.log" >&2
    fail "podman build of the Dockerfile failed"
  }
  grep -E '^(\[[0-9]/[0-9]\] )?STEP|Using cache|Finished' "$work/build.log" | sed 's/^/  /' | cut -c1-160
}
step "podman build (the Dockerfile)" build_image

check_size() {
  local bytes mb
  bytes=$(podman image inspect --format '{{.Size}}' "$image")
  mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1000000 }')
  echo "image size: $mb MB ($bytes bytes; target < $max_image_mb MB)"
  awk -v b="$bytes" -v max="$max_image_mb" 'BEGIN { exit !(b < max * 1000000) }' \
    || fail "the image is $mb MB, over the $max_image_mb MB target"
}
step "image size" check_size

check_filesystem() {
  local user ctr mnt writable
  user=$(podman image inspect --format '{{.Config.User}}' "$image")
  [ "$user" = "10001:10001" ] || fail "the image's USER is '$user', expected 10001:10001"
  ctr=$(podman create "$image")
  containers+=("$ctr")
  mnt=$(podman mount "$ctr")
  # Anything uid 10001 (group 10001) could write to: owned, group-writable or world-writable.
  writable=$(cd "$mnt" && find . -xdev ! -type l \( -uid 10001 -o \( -gid 10001 -perm -g+w \) -o -perm -o+w \) | sort)
  podman umount "$ctr" >/dev/null
  echo "writable by uid 10001 in the image: $(echo $writable)"
  [ "$writable" = "./data" ] || fail "expected only /data to be writable by the tessera user, found: $(echo $writable)"
}
step "non-root user, only /data writable" check_filesystem

port=$(free_port)
base=http://127.0.0.1:$port
start_container() {
  local name=$1
  shift
  # podman's stderr goes to a file: without systemd it complains that it
  # cannot schedule the healthcheck timer (checks below run it by hand).
  podman run -d --name "$name" -p "127.0.0.1:$port:8080" -v "$volume:/data" \
    -e TESSERA__SERVER__SHUTDOWN_TIMEOUT_SECS=$shutdown_timeout "$@" "$image" >/dev/null 2>"$work/podman.err" \
    || { cat "$work/podman.err" >&2; fail "podman run $name failed"; }
  containers+=("$name")
  if ! wait_http "$base/healthz" 30; then
    podman logs "$name" 2>&1 | tail -20 >&2
    fail "$name did not answer /healthz on $base within 30 s"
  fi
}

# call METHOD PATH [JSON] [TOKEN]: the status; the body is in $work/body.
call() {
  local args=(-s -o "$work/body" -w '%{http_code}' -X "$1" "$base$2")
  [ -z "${3:-}" ] || args+=(-H 'Content-Type: application/json' -d "$3")
  [ -z "${4:-}" ] || args+=(-H "Authorization: Bearer $4")
  curl "${args[@]}"
}

expect() {
  local want=$1 got=$2 what=$3
  [ "$got" = "$want" ] || fail "$what: HTTP $got, expected $want: $(head -c 300 "$work/body")"
}

first=$run_id-1
check_api() {
  local pid uid status
  start_container "$first"
  pid=$(podman inspect --format '{{.State.Pid}}' "$first")
  uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
  echo "serving on $base as uid $uid"
  [ "$uid" = 10001 ] || fail "the server runs as uid $uid, expected 10001"
  status=$(call POST /users '{"username":"alice","email":"alice@example.com","password":"correct horse battery"}')
  expect 201 "$status" "POST /users"
  status=$(call POST /auth/login '{"username":"alice","password":"correct horse battery"}')
  expect 200 "$status" "POST /auth/login"
  token=$(json access_token <"$work/body")
  status=$(call GET /users/me "" "$token")
  expect 200 "$status" "GET /users/me"
  [ "$(json username <"$work/body")" = alice ] || fail "GET /users/me: $(cat "$work/body")"
  echo "register, login and GET /users/me: ok"
}
step "run: register, login, GET /users/me through the published port" check_api

check_healthcheck() {
  local out health
  out=$(podman healthcheck run "$first" 2>&1) || fail "podman healthcheck run: $out"
  health=$(podman inspect --format '{{.State.Health.Status}}' "$first")
  echo "podman healthcheck run: ${out:-exit 0}; health status: $health"
  [ "$health" = healthy ] || fail "the container's health status is '$health'"
}
step "HEALTHCHECK (tessera healthcheck)" check_healthcheck

# How many of the logins in flight have an answer matching the status pattern
# (awk, not grep: a grep that matches nothing fails the pipeline, and under
# `set -e` that ended the script silently while no login had been answered).
count_answers() {
  awk -v pattern="^$1\$" '$0 ~ pattern { n++ } END { print n + 0 }' "$work"/drain.*
}

# Logins in flight (each an Argon2 hash, two at a time on two cores) when
# SIGTERM arrives must all be answered: actix stops accepting and drains.
# (actix-server before 2.9.1 could drop a worker, and its requests, when the
# accept thread stopped first: about one run in six here lost 4 to 12.)
check_stop() {
  local started elapsed code i answered connected total=40
  for i in $(seq 1 $total); do
    curl -s -o /dev/null -w '%{http_code}' -X POST "$base/auth/login" -H 'Content-Type: application/json' \
      -d '{"username":"alice","password":"correct horse battery"}' >"$work/drain.$i" 2>/dev/null &
  done
  # Stop once all are connected or answered (at most 5 s), and the server has
  # had time to read every request, so none is merely queued for a worker.
  for i in $(seq 1 100); do
    connected=$(ss -Htn state established "( dport = :$port )" | wc -l)
    answered=$(count_answers '[0-9][0-9][0-9]')
    [ $((connected + answered)) -lt $total ] || break
    sleep 0.05
  done
  sleep 0.3
  echo "before the stop: $connected logins connected, $answered answered"
  started=$(date +%s.%N)
  podman stop -t $((shutdown_timeout + 10)) "$first" >/dev/null 2>>"$work/podman.err" \
    || { cat "$work/podman.err" >&2; fail "podman stop failed"; }
  elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  wait
  answered=$(count_answers 200)
  code=$(podman inspect --format '{{.State.ExitCode}}' "$first")
  echo "podman stop: exit status $code after $elapsed s (shutdown timeout ${shutdown_timeout} s)"
  echo "logins in flight at the stop answered 200: $answered of $total"
  podman logs "$first" 2>&1 | awk '/graceful|idle worker/ { print "  log: " substr($0, 1, 194) }'
  echo "  logins answered after the SIGTERM: $(podman logs "$first" 2>&1 | awk '/SIGTERM received/ { after = 1 } after && /route="\/auth\/login" status=200/ { n++ } END { print n + 0 }')"
  [ "$code" = 0 ] || fail "the stopped container exited with status $code, expected 0"
  awk -v e="$elapsed" -v t="$shutdown_timeout" 'BEGIN { exit !(e < t) }' \
    || fail "podman stop took $elapsed s, not within the $shutdown_timeout s shutdown timeout"
  [ "$answered" = $total ] || fail "only $answered of $total logins in flight at the stop were answered"
}
step "podman stop drains and exits 0" check_stop

check_restart() {
  local status second=$run_id-2
  podman rm -v "$first" >/dev/null 2>>"$work/podman.err"
  start_container "$second"
  status=$(call GET /users/me "" "$token")
  expect 200 "$status" "GET /users/me with the token issued before the restart"
  status=$(call POST /auth/login '{"username":"alice","password":"correct horse battery"}')
  expect 200 "$status" "POST /auth/login after the restart"
  echo "a new container on the same volume: the old token and the user are still good"
  podman stop -t $((shutdown_timeout + 10)) "$second" >/dev/null 2>>"$work/podman.err"
}
step "restart: users and the signing key kept in the volume" check_restart

check_production() {
  local out code secret
  # The container's own output (podman logs), not podman's messages.
  podman run -d --name "$run_id-prod" -e TESSERA__SERVER__ENV=production "$image" >/dev/null 2>"$work/podman.err" \
    || { cat "$work/podman.err" >&2; fail "podman run failed"; }
  containers+=("$run_id-prod")
  code=$(timeout 30 podman wait "$run_id-prod" 2>>"$work/podman.err") || fail "production without a key did not exit within 30 s"
  out=$(podman logs "$run_id-prod" 2>&1)
  echo "exit status $code, output:"
  printf '%s\n' "$out" | sed 's/^/  /'
  [ "$code" != 0 ] || fail "production without a key started (exit 0)"
  [ "$(printf '%s\n' "$out" | grep -c .)" = 1 ] || fail "production without a key: expected one line, got the above"
  printf '%s\n' "$out" | grep -q 'jwt.secret' || fail "production without a key: the line does not name jwt.secret"
  # And with a key, from a file as a Docker/compose secret would provide it.
  secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
  printf '%s' "$secret" >"$work/jwt_secret"
  chmod 0644 "$work/jwt_secret"
  podman volume rm -f "$volume" >/dev/null 2>>"$work/podman.err"
  start_container "$run_id-prod-file" -e TESSERA__SERVER__ENV=production \
    -e TESSERA__EMAIL__TRANSPORT=none \
    -e TESSERA__JWT__SECRET_FILE=/run/secrets/tessera_jwt -v "$work/jwt_secret:/run/secrets/tessera_jwt:ro"
  echo "production with jwt.secret_file: serving"
  podman rm -f -v -t $((shutdown_timeout + 10)) "$run_id-prod-file" >/dev/null 2>>"$work/podman.err"
}
step "production: refuses to start without a key" check_production

step_summary
echo "image checks passed: $image"
