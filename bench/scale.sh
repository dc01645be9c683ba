#!/usr/bin/env bash
# Scale benchmark: does a request cost the same with 1,000 users as with
# 1,000,000? tessera's release binary with its shipped defaults, on SQLite and
# on PostgreSQL, each with a small and a large users table side by side in one
# run. The users are written straight into the database (one SQL statement or
# one transaction, every row with a real Argon2id hash copied from a user
# registered through the API), not through POST /users, which would take
# hours at one Argon2id hash each.
#
#   bash bench/scale.sh                                   # 1k and 1M users, 10 s per case
#   BENCH_DURATION=2 BENCH_SIZES="1000 20000" bash bench/scale.sh   # smoke run
#
# Cases per backend and size:
#   me           GET /users/me (the caller's row, by primary key)
#   list         GET /users?limit=20, the first page (`total` from the counter)
#   deep_cursor  GET /users?limit=20&cursor=... the last page, by keyset
#   deep_offset  GET /users?limit=20&offset=N-20 the same page by offset, kept
#                for compatibility: reported, expected to grow with N
#   login        POST /auth/login (Argon2id: bound by the CPU, not the table)
#   register     POST /users, a new user per request (Argon2id, unique indexes,
#                the counter, the verification mail to the log)
# Target (issue #14): at the large size every case but deep_offset keeps >= 0.8
# of its own throughput at the small size.
#
# Settings (environment), besides those of bench/lib.sh (BENCH_DURATION,
# BENCH_CONNECTIONS, BENCH_THREADS, BENCH_BACKENDS, BENCH_PG_URL,
# BENCH_NO_BUILD, BENCH_OUT, CARGO_TARGET_DIR):
#   BENCH_SIZES   users per database, smallest first ("1000 1000000")
set -euo pipefail

bench_name=scale
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
sizes=${BENCH_SIZES:-1000 1000000}
command -v python3 >/dev/null || fail "python3 is missing (it seeds the SQLite database)"

build_tessera
[ -x "$tessera" ] || fail "no $tessera (unset BENCH_NO_BUILD)"

# Registration: each request a new user, unique across threads and requests.
{
  cat <<'EOF'
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  n = 0
end
function request()
  n = n + 1
  local name = string.format("reg%d_%d", id, n)
EOF
  cat <<EOF
  return wrk.format("POST", "/users", {["Content-Type"] = "application/json"},
    '{"username":"' .. name .. '","email":"' .. name .. '@example.com","password":"$password"}')
end
EOF
  cat "$tmp/done.lua"
} >"$tmp/register.lua"

# seed_sqlite FILE N: N users after the bench user, in one transaction. The
# timestamps use the format diesel writes; ids are random UUIDs as tessera's.
seed_sqlite() {
  python3 - "$1" "$2" <<'EOF'
import sqlite3, sys, uuid
from datetime import datetime, timedelta
path, count = sys.argv[1], int(sys.argv[2])
db = sqlite3.connect(path)
password_hash, created = db.execute(
    "SELECT password_hash, created_at FROM users WHERE username = 'bench'").fetchone()
start = datetime.fromisoformat(created)
def rows():
    for i in range(1, count + 1):
        at = (start + timedelta(microseconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f")
        name = f"seed{i:07d}"
        yield (str(uuid.uuid4()), name, name, f"{name}@example.com", f"{name}@example.com",
               password_hash, at, at, at)
with db:
    db.executemany(
        "INSERT INTO users (id, username, username_lower, email, email_lower, password_hash,"
        " role, tokens_valid_after, created_at, updated_at, is_active, email_verified)"
        " VALUES (?, ?, ?, ?, ?, ?, 'user', ?, ?, ?, 1, 1)", rows())
db.close()
EOF
}

# seed_postgres URL N: the same in one statement, then ANALYZE (what
# autovacuum does on its own within a minute of a bulk load).
seed_postgres() {
  psql -q -X -v ON_ERROR_STOP=1 "$1" >/dev/null <<EOF
INSERT INTO users (id, username, username_lower, email, email_lower, password_hash,
                   role, tokens_valid_after, created_at, updated_at, is_active, email_verified)
SELECT gen_random_uuid()::text, name, name, name || '@example.com', name || '@example.com',
       b.password_hash, 'user', at, at, at, true, true
FROM (SELECT password_hash, created_at FROM users WHERE username = 'bench') AS b,
     LATERAL (SELECT 'seed' || lpad(i::text, 7, '0') AS name,
                     b.created_at + i * interval '1 microsecond' AS at
              FROM generate_series(1, $2) AS i) AS s;
ANALYZE users;
EOF
}

# bench_size BACKEND SIZE: a fresh database with SIZE users, then every case.
bench_size() {
  local backend=$1 size=$2 name=$1-$2 db_url port base pid token seconds deep_cursor
  mkdir -p "$tmp/$name"
  case $backend in
    sqlite) db_url="sqlite://$tmp/$name/tessera.db" ;;
    postgres)
      pg_db=tessera_scale_$$_$RANDOM
      psql -q -X "$pg_url/postgres" -c "CREATE DATABASE \"$pg_db\"" >/dev/null || fail "cannot create database $pg_db"
      db_url=$pg_url/$pg_db
      ;;
  esac
  port=$(free_port)
  base=http://127.0.0.1:$port
  log "[$name] starting tessera on $base"
  start_tessera "$name" "$db_url" "$port" "$log_level" "$tmp/$name/tessera.log"
  curl -fsS -o /dev/null -X POST "$base/users" -H 'Content-Type: application/json' \
    -d "{\"username\":\"bench\",\"email\":\"bench@example.com\",\"password\":\"$password\"}" \
    || fail "registering the bench user failed"

  log "[$name] seeding $((size - 1)) users straight into the database"
  seconds=$SECONDS
  case $backend in
    sqlite) seed_sqlite "$tmp/$name/tessera.db" "$((size - 1))" || fail "seeding SQLite failed" ;;
    postgres) seed_postgres "$db_url" "$((size - 1))" || fail "seeding PostgreSQL failed" ;;
  esac
  extra "$name" seed_s "$((SECONDS - seconds))"
  extra "$name" rss_seeded_kib "$(kib "$pid" VmRSS)"

  token=$(curl -fsS -X POST "$base/auth/login" -H 'Content-Type: application/json' \
    -d "{\"username\":\"bench\",\"password\":\"$password\"}" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  [ -n "$token" ] || fail "login of the bench user failed"
  local total
  total=$(curl -fsS "$base/users?limit=1" -H "Authorization: Bearer $token" | sed -E 's/.*"total":([0-9]+).*/\1/')
  [ "$total" = "$size" ] || fail "[$name] total is $total, expected $size"
  # The cursor of the last page: the one after the user at position size-21.
  deep_cursor=$(curl -fsS "$base/users?limit=1&offset=$((size - 21))" -H "Authorization: Bearer $token" \
    | sed -E 's/.*"next_cursor":"([^"]+)".*/\1/')
  [ -n "$deep_cursor" ] || fail "[$name] no cursor for the last page"

  log "[$name] GET /users/me"
  run_wrk me "$name" "$tmp/get.lua" "$base/users/me" -H "Authorization: Bearer $token"
  log "[$name] GET /users?limit=20 (first page)"
  run_wrk list "$name" "$tmp/get.lua" "$base/users?limit=20" -H "Authorization: Bearer $token"
  log "[$name] GET /users?limit=20&cursor=... (last page, keyset)"
  run_wrk deep_cursor "$name" "$tmp/get.lua" "$base/users?limit=20&cursor=$deep_cursor" -H "Authorization: Bearer $token"
  log "[$name] POST /auth/login"
  run_wrk login "$name" "$tmp/login.lua" "$base/auth/login"
  log "[$name] POST /users (registration)"
  run_wrk register "$name" "$tmp/register.lua" "$base/users"
  extra "$name" rss_before_offset_kib "$(kib "$pid" VmRSS)"
  # Last: at a million users each of these requests takes seconds, and the
  # ones still queued when wrk stops keep the server busy for a while.
  log "[$name] GET /users?limit=20&offset=$((size - 20)) (last page, offset)"
  run_wrk deep_offset "$name" "$tmp/get.lua" "$base/users?limit=20&offset=$((size - 20))" -H "Authorization: Bearer $token"
  extra "$name" rss_kib "$(kib "$pid" VmRSS)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if [ "$backend" = postgres ]; then
    psql -q -X "$pg_url/postgres" -c "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null && pg_db=
  fi
}

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
ran=()
for backend in $backends; do
  case $backend in
    sqlite) ;;
    postgres)
      if ! command -v psql >/dev/null || ! psql -q -X "$pg_url/postgres" -c 'SELECT 1' >/dev/null 2>&1; then
        loud "PostgreSQL cases SKIPPED: psql missing or $pg_url unreachable (trust auth, user postgres expected)"
        continue
      fi
      ;;
    *) fail "unknown backend $backend (sqlite, postgres)" ;;
  esac
  for size in $sizes; do bench_size "$backend" "$size"; done
  ran+=("$backend")
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
((${#ran[@]} > 0)) || fail "no backend ran"

label() {
  case $1 in
    me) echo "GET /users/me" ;;
    list) echo "GET /users?limit=20" ;;
    deep_cursor) echo "GET /users?limit=20&cursor= (last page)" ;;
    deep_offset) echo "GET /users?limit=20&offset= (last page)" ;;
    login) echo "POST /auth/login" ;;
    register) echo "POST /users" ;;
  esac
}

set -- $sizes
small=$1
large=${!#}
{
  echo
  echo "tessera scale benchmark, $started"
  echo "machine: nproc=$cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "load average (1, 5, 15 min): before $load_before, after $load_after"
  echo "wrk: $threads threads, $connections connections, ${duration} s per case; sizes: $sizes users; tessera with its shipped defaults"
  for b in "${ran[@]}"; do
    echo
    header="| $b |"
    rule="|---|"
    for s in $sizes; do header+=" $s users req/s | p99 ms |"; rule+="---:|---:|"; done
    echo "$header $large / $small |"
    echo "$rule---:|"
    for c in me list deep_cursor deep_offset login register; do
      row="| $(label "$c") |"
      for s in $sizes; do row+=" $(field "$c" "$b-$s" 3) | $(field "$c" "$b-$s" 5) |"; done
      echo "$row $(ratio "$(field "$c" "$b-$large" 3)" "$(field "$c" "$b-$small" 3)") |"
    done
    for s in $sizes; do
      echo "$b, $s users: seeded in $(get_extra "$b-$s" seed_s) s; tessera VmRSS after seeding $(mib "$(get_extra "$b-$s" rss_seeded_kib)") MiB, before the offset case $(mib "$(get_extra "$b-$s" rss_before_offset_kib)") MiB, at the end $(mib "$(get_extra "$b-$s" rss_kib)") MiB"
    done
  done
  echo
  echo "Targets (at $large users, each case >= 0.8 of its figure at $small; deep_offset reported):"
  for b in "${ran[@]}"; do
    for c in me list deep_cursor login register deep_offset; do
      r=$(ratio "$(field "$c" "$b-$large" 3)" "$(field "$c" "$b-$small" 3)")
      if [ "$c" = deep_offset ]; then
        echo "  [$b] $(label "$c"): $r (reported)"
      else
        echo "  [$b] $(label "$c"): $r (>= 0.8): $(verdict "$r" ">=" 0.8)"
      fi
    done
  done
  echo
  while read -r c b rps p50 p99 n non2xx errs; do
    printf 'BENCH case=%s backend=%s rps=%s p50_ms=%s p99_ms=%s requests=%s non2xx=%s socket_errors=%s\n' \
      "$c" "$b" "$rps" "$p50" "$p99" "$n" "$non2xx" "$errs"
  done <"$results"
} | tee "$out"
log "summary written to $out"
