#!/usr/bin/env bash
# Where the CPU goes while tessera serves a database route on PostgreSQL on
# this machine: tessera's process against all PostgreSQL server processes
# (and the rest, mostly wrk), over one `wrk -t2 -c64` run. For a database on
# the same host as the service, as in bench/load.sh, the server's own share
# bounds what tessera can serve.
#
#   bash bench/pg_cpu_split.sh target/release/tessera [POOL_SIZE (8)] [PATH (/users/me)]
#
# tessera starts as bench/load.sh starts it, on a fresh PostgreSQL database
# (dropped at exit) with BENCH_USERS (41) users seeded through POST /users.
# Environment: BENCH_PG_URL (postgres://postgres@127.0.0.1:5432),
# BENCH_DURATION (8), BENCH_USERS.
set -euo pipefail

bench_name=pg-split
BENCH_DURATION=${BENCH_DURATION:-8}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# >= 1)) || fail "usage: bash bench/pg_cpu_split.sh TESSERA_BINARY [POOL_SIZE] [PATH]"
[ -x "$1" ] || fail "$1 is not an executable"
tessera=$(realpath "$1")
export TESSERA__DATABASE__POOL_SIZE=${2:-8}
path=${3:-/users/me}
users=${BENCH_USERS:-41}
command -v psql >/dev/null || fail "psql is missing"

pg_db=tessera_split_$$
psql -q -X "$pg_url/postgres" -c "CREATE DATABASE $pg_db" >/dev/null || fail "cannot create a database on $pg_url"
port=$(free_port)
base=http://127.0.0.1:$port
mkdir -p "$tmp/pg"
start_tessera pg "$pg_url/$pg_db" "$port" "" "$tmp/pg/tessera.log"
seed_users "$base" "$users"
token=$(bench_token "$base")

ticks() { # user + system clock ticks of the given processes
  local total=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
  done
  echo "$total"
}
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }  # user nice system irq softirq
postgres_pids() { { pgrep -x postgres || true; pgrep -f '^postgres: ' || true; } | sort -u; }
[ -n "$(postgres_pids)" ] || fail "no PostgreSQL server process on this host: nothing to split"

# shellcheck disable=SC2046
t0=$(ticks "$pid") p0=$(ticks $(postgres_pids)) b0=$(busy)
run_wrk split pg "$tmp/get.lua" "$base$path" -H "Authorization: Bearer $token"
# shellcheck disable=SC2046
t1=$(ticks "$pid") p1=$(ticks $(postgres_pids)) b1=$(busy)
hz=$(getconf CLK_TCK)
awk -v rps="$(field split pg 3)" -v t=$((t1 - t0)) -v p=$((p1 - p0)) -v b=$((b1 - b0)) \
  -v all=$((cores * duration * hz)) -v hz="$hz" -v path="$path" \
  -v pool="$TESSERA__DATABASE__POOL_SIZE" -v secs="$duration" 'BEGIN {
    n = rps * secs
    printf "%s, pool %d: %.0f req/s; of all CPU: tessera %.0f %%, PostgreSQL %.0f %%, the rest %.0f %%, idle %.0f %%\n",
      path, pool, rps, 100 * t / all, 100 * p / all, 100 * (b - t - p) / all, 100 * (b > all ? 0 : all - b) / all
    printf "CPU per request: tessera %.1f us, PostgreSQL %.1f us\n", t / hz * 1e6 / n, p / hz * 1e6 / n
  }' | tee "$out"
