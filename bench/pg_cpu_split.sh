#!/usr/bin/env bash
# Where the CPU goes while tessera serves a database route on PostgreSQL on
# this machine: tessera's process against all PostgreSQL server processes
# (and the rest, mostly wrk), over one `wrk -t2 -c64` run. For a database on
# the same host as the service, as in bench/load.sh, the server's own share
# bounds what tessera can serve.
#
#   bash bench/pg_cpu_split.sh target/release/tessera [POOL_SIZE (8)] [PATH (/users/me)]
#
# Environment: BENCH_PG_URL (postgres://postgres@127.0.0.1:5432), BENCH_DURATION (8).
# Creates a database of its own and drops it at exit; seeds 41 users.
set -euo pipefail
(($# >= 1)) || { echo "usage: $0 TESSERA_BINARY [POOL_SIZE] [PATH]" >&2; exit 2; }
bin=$1 pool=${2:-8} path=${3:-/users/me}
pg_url=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
duration=${BENCH_DURATION:-8}
secret='bench-secret-bench-secret-bench-secret-0123456789'
password='bench-password-0123456789'
db=tessera_split_$$
dir=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  psql -q -X "$pg_url/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
psql -q -X "$pg_url/postgres" -c "CREATE DATABASE $db" >/dev/null
port=$((20000 + RANDOM % 20000))
base=http://127.0.0.1:$port
(cd "$dir" && exec env -u RUST_LOG TESSERA__SERVER__BIND="127.0.0.1:$port" TESSERA__SERVER__ENV=development \
  TESSERA__DATABASE__POOL_SIZE="$pool" TESSERA__SERVER__DATA_DIR="$dir/data" \
  TESSERA__DATABASE__URL="$pg_url/$db" TESSERA__JWT__SECRET="$secret" "$bin" >"$dir/log" 2>&1) &
pid=$!
for _ in $(seq 100); do curl -fs -o /dev/null "$base/healthz" && break; sleep 0.1; done
for k in $(seq 0 40); do
  curl -fs -o /dev/null -X POST "$base/users" -H 'Content-Type: application/json' \
    -d "{\"username\":\"user$k\",\"email\":\"user$k@example.com\",\"password\":\"$password\"}"
done
token=$(curl -fsS -X POST "$base/auth/login" -H 'Content-Type: application/json' \
  -d "{\"username\":\"user0\",\"password\":\"$password\"}" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
ticks() { # user + system clock ticks of the given processes
  local total=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
  done
  echo "$total"
}
busy() { awk '/^cpu / { print $2 + $3 + $4 + $6 + $7 + $8 }' /proc/stat; }
postgres_pids() { { pgrep -x postgres; pgrep -f '^postgres: '; } | sort -u; }
# shellcheck disable=SC2046
t0=$(ticks "$pid") p0=$(ticks $(postgres_pids)) b0=$(busy)
wrk -t2 -c64 -d"${duration}s" -H "Authorization: Bearer $token" "$base$path" >"$dir/wrk" 2>&1
# shellcheck disable=SC2046
t1=$(ticks "$pid") p1=$(ticks $(postgres_pids)) b1=$(busy)
awk -v rps="$(awk '/Requests\/sec/ { print $2 }' "$dir/wrk")" -v t=$((t1 - t0)) -v p=$((p1 - p0)) \
  -v b=$((b1 - b0)) -v all=$(($(nproc) * duration * $(getconf CLK_TCK))) -v hz="$(getconf CLK_TCK)" \
  -v path="$path" -v pool="$pool" -v secs="$duration" 'BEGIN {
    n = rps * secs
    printf "%s, pool %d: %.0f req/s; of all CPU: tessera %.0f %%, PostgreSQL %.0f %%, the rest %.0f %%, idle %.0f %%\n",
      path, pool, rps, 100 * t / all, 100 * p / all, 100 * (b - t - p) / all, 100 * (b > all ? 0 : all - b) / all
    printf "CPU per request: tessera %.1f us, PostgreSQL %.1f us\n", t / hz * 1e6 / n, p / hz * 1e6 / n
  }'
