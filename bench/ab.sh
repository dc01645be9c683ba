#!/usr/bin/env bash
# Two tessera binaries side by side: the same light and database cases against
# each, interleaved round by round, so that the machine's noise hits both
# alike. For a before/after of a change: build the old commit's binary
# somewhere, then
#
#   bash bench/ab.sh OLD_BINARY NEW_BINARY
#
# Each binary runs with the shipped defaults (access log on), on its own fresh
# SQLite file (or, with BENCH_BACKEND=postgres, its own PostgreSQL database
# on BENCH_PG_URL, dropped at exit) seeded with the same users through POST /users, as
# bench/load.sh starts it (HS256, raised login throttles). Cases: GET /healthz,
# GET /auth/verify, GET /users/me, GET /users?limit=20, each `wrk -t2 -c64`
# for BENCH_DURATION (5) seconds, BENCH_ROUNDS (3) rounds, the order of the
# two binaries swapped every round. Reported per case: the mean req/s of each,
# the ratio new/old, and the server's CPU time (user + system, its log writer
# thread included) per request, the steadier figure on a shared machine.
#
# Environment: BENCH_BACKEND (sqlite), BENCH_DURATION, BENCH_ROUNDS, BENCH_USERS (100),
# BENCH_CONNECTIONS, BENCH_THREADS; BENCH_OUT (target/bench-ab.txt). Server
# settings pass through, e.g. TESSERA__LOG__FORMAT=json for production's log.
set -euo pipefail

bench_name=ab
BENCH_DURATION=${BENCH_DURATION:-5}
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 2)) || fail "usage: bash bench/ab.sh OLD_BINARY NEW_BINARY"
binaries=("$1" "$2")
for binary in "${binaries[@]}"; do
  [ -x "$binary" ] || fail "$binary is not an executable"
done
# The servers start in directories of their own: absolute paths.
binaries=("$(realpath "$1")" "$(realpath "$2")")
rounds=${BENCH_ROUNDS:-3}
users=${BENCH_USERS:-100}
ticks=$(getconf CLK_TCK)

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

declare -A server_pid base_url token
for i in 0 1; do
  name=$([ "$i" = 0 ] && echo old || echo new)
  mkdir -p "$tmp/$name"
  port=$(free_port)
  tessera=${binaries[$i]}
  log "[$name] starting $tessera on port $port"
  case ${BENCH_BACKEND:-sqlite} in
    sqlite) db_url=sqlite://$tmp/$name/tessera.db ;;
    postgres)
      db="tessera_ab_${name}_$$"
      psql -q -X "$pg_url/postgres" -c "CREATE DATABASE \"$db\"" >/dev/null \
        || fail "cannot create database $db on $pg_url (trust auth, user postgres expected)"
      pg_db="$pg_db $db"
      db_url=$pg_url/$db
      ;;
    *) fail "BENCH_BACKEND is sqlite or postgres, not ${BENCH_BACKEND}" ;;
  esac
  start_tessera "$name" "$db_url" "$port" "" "$tmp/$name/tessera.log"
  server_pid[$name]=$pid
  base_url[$name]=http://127.0.0.1:$port
  base=${base_url[$name]}
  log "[$name] seeding $users users through POST /users"
  seed_users "$base" "$users"
  token[$name]=$(bench_token "$base")
done

cases=(healthz verify me list)
declare -A path=([healthz]=/healthz [verify]=/auth/verify [me]=/users/me [list]='/users?limit=20')
cpu=$tmp/cpu  # case name ticks requests
: >"$cpu"
for round in $(seq 1 "$rounds"); do
  order=(old new)
  ((round % 2 == 0)) && order=(new old)
  for case in "${cases[@]}"; do
    for name in "${order[@]}"; do
      log "round $round/$rounds: $case ($name)"
      before=$(cpu_ticks "${server_pid[$name]}")
      run_wrk "$case" "$name" "$tmp/get.lua" "${base_url[$name]}${path[$case]}" \
        -H "Authorization: Bearer ${token[$name]}"
      after=$(cpu_ticks "${server_pid[$name]}")
      echo "$case $name $((after - before)) $(awk -v c="$case" -v n="$name" '$1 == c && $2 == n { r = $6 } END { print r }' "$results")" >>"$cpu"
    done
  done
done

{
  echo "# bench/ab.sh: $rounds rounds of ${duration}s, wrk -t$threads -c$connections, ${BENCH_BACKEND:-sqlite}, $users users, log.level=info, log.format=${TESSERA__LOG__FORMAT:-text (the development default)}"
  echo "# old: ${binaries[0]}"
  echo "# new: ${binaries[1]}"
  echo "# load average (1, 5, 15 min) at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| case | old req/s | new req/s | new/old | old CPU µs/req | new CPU µs/req | new/old |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for case in "${cases[@]}"; do
    awk -v c="$case" -v t="$ticks" -v res="$results" '
      BEGIN {
        while ((getline line < res) > 0) {
          split(line, f, " ")
          if (f[1] == c) { rps[f[2]] += f[3]; n[f[2]]++ }
        }
      }
      $1 == c { ticks[$2] += $3; reqs[$2] += $4 }
      END {
        o = rps["old"] / n["old"]; w = rps["new"] / n["new"]
        co = ticks["old"] / t * 1e6 / reqs["old"]; cw = ticks["new"] / t * 1e6 / reqs["new"]
        printf "| %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f |\n", c, o, w, w / o, co, cw, cw / co
      }' "$cpu"
  done
} | tee "$out"
log "summary written to $out"
