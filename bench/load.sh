#!/usr/bin/env bash
# Load benchmark: tessera's release binary on SQLite and on PostgreSQL, under
# wrk, side by side with a bare actix-web handler (bench/reference/) that
# verifies one HS256 token and nothing else: the ceiling of this stack here.
#
#   bash bench/load.sh                                  # 64 connections, 10 s per case
#   bash bench/load.sh --quiet-log                      # also /healthz and /auth/verify at log.level=warn
#   BENCH_DURATION=2 BENCH_CONNECTIONS=16 BENCH_USERS=100 bash bench/load.sh   # smoke run
#
# tessera runs with its shipped defaults: the access log on (text lines on
# stderr, into a file here, at log.level=info), metrics, every middleware.
#
# Cases per backend: reference (bare handlers /hello and /verify), GET /healthz, GET /auth/verify,
# GET /users/me, GET /users?limit=20, POST /auth/login (default Argon2 cost),
# POST /auth/refresh (each connection rotates its own token chain), and
# GET /auth/verify during a login flood (two wrk processes at once). Prints a
# table, one `BENCH ...` line per case, the ratios against the targets of
# BENCHMARKS.md, and the RSS of the tessera process (idle, read load, flood).
#
# Settings (environment):
#   BENCH_DURATION      seconds per case (10)
#   BENCH_CONNECTIONS   wrk connections per case (64)
#   BENCH_THREADS       wrk threads per wrk process (nproc, at most connections)
#   BENCH_USERS         users seeded through POST /users (1000)
#   BENCH_BACKENDS      "sqlite postgres" (either or both)
#   BENCH_PG_URL        PostgreSQL server, trust auth (postgres://postgres@127.0.0.1:5432);
#                       the script creates its own database and drops it at exit
#   BENCH_ARGON2_SECONDS  how long the raw Argon2id capacity is measured, just
#                       before each backend's login case (5): one thread per
#                       core hashing with the configured cost outside the
#                       server (examples/argon2_capacity.rs); login throughput
#                       is reported as a fraction of it
#   BENCH_LOG_LEVEL     tessera's log.level (unset: the shipped default, info);
#                       --quiet-log adds healthz and verify cases at warn
#   BENCH_NO_BUILD=1    use the binaries already built
#   BENCH_OUT           where the summary is also written ($target/bench-load.txt)
#   CARGO_TARGET_DIR    honoured; the reference crate builds into the same one
set -euo pipefail

quiet_log=
for arg in "$@"; do
  case $arg in
    --quiet-log) quiet_log=1 ;;
    *) printf 'usage: %s [--quiet-log]\n' "$0" >&2; exit 2 ;;
  esac
done

bench_name=load
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
users=${BENCH_USERS:-1000}
argon2_seconds=${BENCH_ARGON2_SECONDS:-5}

# --- build -------------------------------------------------------------------

build_tessera
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  log "cargo build --release --example argon2_capacity"
  (cd "$root" && CARGO_TARGET_DIR=$target_dir cargo build --release --example argon2_capacity) \
    || fail "building examples/argon2_capacity failed"
  log "cargo build --release (bench/reference, same target dir)"
  (cd "$root/bench/reference" && CARGO_TARGET_DIR=$target_dir cargo build --release) \
    || fail "building bench/reference failed"
fi
reference=$target_dir/release/tessera-bench-reference
argon2_capacity=$target_dir/release/examples/argon2_capacity
[ -x "$argon2_capacity" ] || fail "no $argon2_capacity (unset BENCH_NO_BUILD)"
[ -x "$tessera" ] || fail "no $tessera (unset BENCH_NO_BUILD)"
[ -x "$reference" ] || fail "no $reference (unset BENCH_NO_BUILD)"

# --- wrk scripts ---------------------------------------------------------------

# Refresh: every connection needs a token that was never presented. Each
# thread starts with its share of the refresh tokens of BENCH_CONNECTIONS +
# threads logins (file BENCH_REFRESH_FILE, one per line), sends one per
# request, and puts the successor from each answer back in its queue: so every
# request rotates a fresh, valid token, as a client does, for as long as the
# case runs. (One spare token per thread: wrk calls request() once on the
# first thread to check the script, and throws that request away.)
{
  cat <<'EOF'
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  queue, exhausted = {}, 0
  local n, i = tonumber(os.getenv("BENCH_WRK_THREADS")), 0
  for line in io.lines(os.getenv("BENCH_REFRESH_FILE")) do
    if i % n == id - 1 then queue[#queue + 1] = line end
    i = i + 1
  end
end
function request()
  local token = table.remove(queue)
  if not token then exhausted = exhausted + 1; token = "exhausted" end
  return wrk.format("POST", "/auth/refresh", {["Content-Type"] = "application/json"},
    '{"refresh_token":"' .. token .. '"}')
end
function response(status, headers, body)
  local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if token then queue[#queue + 1] = token end
end
EOF
  cat "$tmp/done.lua"
} >"$tmp/refresh.lua"

# --- one backend -------------------------------------------------------------

bench_backend() { # backend database-url
  local backend=$1 db_url=$2 port base ref_port ref_pid pid token
  port=$(free_port)
  base=http://127.0.0.1:$port
  mkdir -p "$tmp/$backend"
  log "[$backend] starting tessera on $base"
  start_tessera "$backend" "$db_url" "$port" "$log_level" "$tmp/$backend/tessera.log"
  sleep 1
  extra "$backend" idle_rss_kib "$(kib "$pid" VmRSS)"

  log "[$backend] seeding $users users through POST /users (Argon2id each)"
  seed_users "$base" "$users"
  token=$(bench_token "$base")
  extra "$backend" seeded_rss_kib "$(kib "$pid" VmRSS)"

  # b) the bare reference handler, started fresh next to this backend's run.
  ref_port=$(free_port)
  REFERENCE_BIND=127.0.0.1:$ref_port REFERENCE_SECRET=$secret "$reference" >"$tmp/reference.log" 2>&1 &
  ref_pid=$!
  pids+=("$ref_pid")
  curl -fsS -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$ref_port/verify" 2>/dev/null \
    || { sleep 0.5; curl -fsS -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$ref_port/verify"; } \
    || { cat "$tmp/reference.log" >&2; fail "the reference handler does not accept tessera's token"; }
  log "[$backend] reference: bare actix-web GET /hello"
  run_wrk hello "$backend" "$tmp/get.lua" "http://127.0.0.1:$ref_port/hello"
  log "[$backend] reference: bare actix-web + jsonwebtoken verify"
  run_wrk reference "$backend" "$tmp/get.lua" "http://127.0.0.1:$ref_port/verify" -H "Authorization: Bearer $token"
  kill "$ref_pid"; wait "$ref_pid" 2>/dev/null || true

  log "[$backend] GET /healthz"
  run_wrk healthz "$backend" "$tmp/get.lua" "$base/healthz"

  start_sampler "$pid" "$tmp/rss-read"
  log "[$backend] GET /auth/verify"
  run_wrk verify "$backend" "$tmp/get.lua" "$base/auth/verify" -H "Authorization: Bearer $token"
  log "[$backend] GET /users/me"
  curl -fsS "$base/metrics" >"$tmp/metrics-before"
  run_wrk me "$backend" "$tmp/get.lua" "$base/users/me" -H "Authorization: Bearer $token"
  curl -fsS "$base/metrics" >"$tmp/metrics-after"
  local count sum fast
  count=$(awk -v a="$(metric "$tmp/metrics-after" tessera_db_pool_wait_seconds_count)" \
    -v b="$(metric "$tmp/metrics-before" tessera_db_pool_wait_seconds_count)" 'BEGIN { print a - b }')
  sum=$(awk -v a="$(metric "$tmp/metrics-after" tessera_db_pool_wait_seconds_sum)" \
    -v b="$(metric "$tmp/metrics-before" tessera_db_pool_wait_seconds_sum)" 'BEGIN { print a - b }')
  fast=$(awk -v a="$(metric "$tmp/metrics-after" 'tessera_db_pool_wait_seconds_bucket{le="0.001"}')" \
    -v b="$(metric "$tmp/metrics-before" 'tessera_db_pool_wait_seconds_bucket{le="0.001"}')" 'BEGIN { print a - b }')
  extra "$backend" me_pool_waits "$count"
  extra "$backend" me_pool_wait_mean_ms "$(awk -v s="$sum" -v c="$count" 'BEGIN { printf "%.3f", c ? s / c * 1000 : 0 }')"
  extra "$backend" me_pool_wait_over_1ms_pct "$(awk -v f="$fast" -v c="$count" 'BEGIN { printf "%.1f", c ? (c - f) / c * 100 : 0 }')"
  log "[$backend] GET /users?limit=20"
  run_wrk list "$backend" "$tmp/get.lua" "$base/users?limit=20" -H "Authorization: Bearer $token"
  stop_sampler
  extra "$backend" read_rss_kib "$(cat "$tmp/rss-read")"

  log "[$backend] raw Argon2id capacity: $cores threads hashing for $argon2_seconds s, outside the server"
  local capacity_line
  capacity_line=$(cd "$root" && env -u RUST_LOG "$argon2_capacity" "$argon2_seconds" "$cores") \
    || fail "examples/argon2_capacity failed"
  log "$capacity_line"
  extra "$backend" argon2_capacity "$(sed -E 's/.*capacity_per_s=([0-9.]+).*/\1/' <<<"$capacity_line")"
  extra "$backend" argon2_raw_ms "$(sed -E 's/.*per_hash_ms=([0-9.]+).*/\1/' <<<"$capacity_line")"
  log "[$backend] POST /auth/login (Argon2id, default cost)"
  curl -fsS "$base/metrics" >"$tmp/metrics-before"
  run_wrk login "$backend" "$tmp/login.lua" "$base/auth/login"
  curl -fsS "$base/metrics" >"$tmp/metrics-after"
  extra "$backend" login_argon2_mean_ms "$(awk \
    -v s1="$(metric "$tmp/metrics-after" tessera_argon2_duration_seconds_sum)" \
    -v s0="$(metric "$tmp/metrics-before" tessera_argon2_duration_seconds_sum)" \
    -v c1="$(metric "$tmp/metrics-after" tessera_argon2_duration_seconds_count)" \
    -v c0="$(metric "$tmp/metrics-before" tessera_argon2_duration_seconds_count)" \
    'BEGIN { printf "%.1f", (c1 > c0) ? (s1 - s0) / (c1 - c0) * 1000 : 0 }')"

  local chains=$((connections + threads))
  log "[$backend] POST /auth/refresh: $chains logins for the starting tokens"
  : >"$tmp/refresh-tokens"
  {
    for i in $(seq 1 "$chains"); do
      ((i == 1)) || echo next
      printf 'url = "%s/auth/login"\nheader = "Content-Type: application/json"\n' "$base"
      printf 'data = "{\\"username\\":\\"bench\\",\\"password\\":\\"%s\\"}"\n' "$password"
    done
  } >"$tmp/logins.curl"
  curl -sS --no-progress-meter -Z --parallel-max "$((cores * 2))" -K "$tmp/logins.curl" \
    | grep -o '"refresh_token":"[^"]*"' | sed -E 's/.*:"([^"]+)"/\1/' >"$tmp/refresh-tokens" || true
  (($(wc -l <"$tmp/refresh-tokens") == chains)) || fail "could not log in $chains times for refresh tokens"
  export BENCH_REFRESH_FILE=$tmp/refresh-tokens BENCH_WRK_THREADS=$threads
  run_wrk refresh "$backend" "$tmp/refresh.lua" "$base/auth/refresh"

  log "[$backend] GET /auth/verify during a login flood (two wrk processes)"
  start_sampler "$pid" "$tmp/rss-flood"
  wrk -t"$threads" -c"$connections" -d"$((duration + 2))s" --timeout 10s -s "$tmp/login.lua" \
    "$base/auth/login" >"$tmp/wrk-flood-login.txt" 2>&1 &
  local flood=$!
  pids+=("$flood")
  sleep 1
  run_wrk verify_flood "$backend" "$tmp/get.lua" "$base/auth/verify" -H "Authorization: Bearer $token"
  wait "$flood" || { cat "$tmp/wrk-flood-login.txt" >&2; fail "the login flood's wrk failed"; }
  record login_flood "$backend" "$tmp/wrk-flood-login.txt"
  stop_sampler
  extra "$backend" flood_rss_kib "$(cat "$tmp/rss-flood")"
  extra "$backend" hwm_kib "$(kib "$pid" VmHWM)"
  extra "$backend" argon2_permits "$cores"

  curl -fsS "$base/metrics" >"$tmp/metrics-end"
  extra "$backend" log_lines_dropped "$(metric "$tmp/metrics-end" tessera_log_lines_dropped_total)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  extra "$backend" log_mib "$(mib "$(($(stat -c %s "$tmp/$backend/tessera.log") / 1024))")"

  if [ -n "$quiet_log" ]; then
    log "[$backend] --quiet-log: tessera again on the same database at log.level=warn"
    start_tessera "$backend" "$db_url" "$port" warn "$tmp/$backend/tessera-quiet.log"
    log "[$backend] GET /healthz (log.level=warn)"
    run_wrk healthz_quiet "$backend" "$tmp/get.lua" "$base/healthz"
    log "[$backend] GET /auth/verify (log.level=warn)"
    run_wrk verify_quiet "$backend" "$tmp/get.lua" "$base/auth/verify" -H "Authorization: Bearer $token"
    kill "$pid"; wait "$pid" 2>/dev/null || true
  fi
  if grep -qE ' (ERROR|WARN) ' "$tmp/$backend/tessera.log"; then
    log "[$backend] tessera logged warnings/errors:"
    grep -E ' (ERROR|WARN) ' "$tmp/$backend/tessera.log" | sort | uniq -c | sort -rn | head -5 >&2
  fi
}

# --- run ---------------------------------------------------------------------

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
ran=()
for backend in $backends; do
  case $backend in
    sqlite)
      bench_backend sqlite "sqlite://$tmp/sqlite/tessera.db"
      ran+=(sqlite)
      ;;
    postgres)
      if ! command -v psql >/dev/null; then
        loud "PostgreSQL cases SKIPPED: psql is not installed"
      elif ! psql -q -X "$pg_url/postgres" -c 'SELECT 1' >/dev/null 2>&1; then
        loud "PostgreSQL cases SKIPPED: $pg_url is unreachable (trust auth, user postgres expected)"
      else
        pg_db=tessera_bench_$$_$RANDOM
        psql -q -X "$pg_url/postgres" -c "CREATE DATABASE \"$pg_db\"" >/dev/null || fail "cannot create database $pg_db"
        bench_backend postgres "$pg_url/$pg_db"
        psql -q -X "$pg_url/postgres" -c "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null && pg_db=
        ran+=(postgres)
      fi
      ;;
    *) fail "unknown backend $backend (sqlite, postgres)" ;;
  esac
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
((${#ran[@]} > 0)) || fail "no backend ran"

# --- report ------------------------------------------------------------------

label() {
  case $1 in
    hello) echo "bare reference GET /hello" ;;
    reference) echo "bare reference GET /verify (HS256 verify)" ;;
    healthz) echo "GET /healthz" ;;
    verify) echo "GET /auth/verify" ;;
    healthz_quiet) echo "GET /healthz, log.level=warn" ;;
    verify_quiet) echo "GET /auth/verify, log.level=warn" ;;
    me) echo "GET /users/me" ;;
    list) echo "GET /users?limit=20" ;;
    login) echo "POST /auth/login" ;;
    refresh) echo "POST /auth/refresh (rotating)" ;;
    verify_flood) echo "GET /auth/verify during login flood" ;;
    login_flood) echo "  (the login flood itself)" ;;
  esac
}

{
  echo
  echo "tessera load benchmark, $started"
  echo "machine: nproc=$cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "load average (1, 5, 15 min): before $load_before, after $load_after"
  echo "wrk: $threads threads, $connections connections, ${duration} s per case; tessera log.level=${log_level:-default (info)}, access log to a file"
  echo
  header="| case |"
  rule="|---|"
  for b in "${ran[@]}"; do header+=" $b req/s | p50 ms | p99 ms |"; rule+="---:|---:|---:|"; done
  echo "$header"
  echo "$rule"
  cases="hello reference healthz verify me list login refresh verify_flood login_flood"
  [ -n "$quiet_log" ] && cases+=" healthz_quiet verify_quiet"
  for c in $cases; do
    row="| $(label "$c") |"
    for b in "${ran[@]}"; do row+=" $(field "$c" "$b" 3) | $(field "$c" "$b" 4) | $(field "$c" "$b" 5) |"; done
    echo "$row"
  done
  echo
  echo "| memory (tessera VmRSS) |$(for b in "${ran[@]}"; do printf ' %s MiB |' "$b"; done)"
  echo "|---|$(for _ in "${ran[@]}"; do printf -- '---:|'; done)"
  echo "| idle, after start |$(for b in "${ran[@]}"; do printf ' %s |' "$(mib "$(get_extra "$b" idle_rss_kib)")"; done)"
  echo "| idle, after seeding |$(for b in "${ran[@]}"; do printf ' %s |' "$(mib "$(get_extra "$b" seeded_rss_kib)")"; done)"
  echo "| peak sampled, read load (verify, me, list) |$(for b in "${ran[@]}"; do printf ' %s |' "$(mib "$(get_extra "$b" read_rss_kib)")"; done)"
  echo "| peak sampled, login flood |$(for b in "${ran[@]}"; do printf ' %s |' "$(mib "$(get_extra "$b" flood_rss_kib)")"; done)"
  echo "| VmHWM at the end |$(for b in "${ran[@]}"; do printf ' %s |' "$(mib "$(get_extra "$b" hwm_kib)")"; done)"
  echo
  for b in "${ran[@]}"; do
    echo "$b: access log $(get_extra "$b" log_mib) MiB written, $(get_extra "$b" log_lines_dropped) lines dropped (tessera_log_lines_dropped_total)"
    echo "$b: GET /users/me pool waits: $(get_extra "$b" me_pool_waits), mean $(get_extra "$b" me_pool_wait_mean_ms) ms, over 1 ms: $(get_extra "$b" me_pool_wait_over_1ms_pct) %; Argon2 mean during the login case (server-side): $(get_extra "$b" login_argon2_mean_ms) ms"
  done
  echo
  for b in "${ran[@]}"; do
    echo "$b: raw Argon2id capacity, $cores threads in parallel outside the server just before the login case: $(get_extra "$b" argon2_capacity) hashes/s, $(get_extra "$b" argon2_raw_ms) ms each"
  done
  echo
  echo "Targets:"
  mem_limit=128
  for b in "${ran[@]}"; do
    hello=$(field hello "$b" 3)
    ref=$(field reference "$b" 3)
    r=$(ratio "$(field healthz "$b" 3)" "$hello")
    echo "  [$b] healthz / bare hello = $r (>= 0.9): $(verdict "$r" ">=" 0.9)"
    r=$(ratio "$(field verify "$b" 3)" "$ref")
    echo "  [$b] verify / bare verify = $r (>= 0.9): $(verdict "$r" ">=" 0.9)"
    if [ -n "$quiet_log" ]; then
      echo "  [$b] (log.level=warn) healthz / bare hello = $(ratio "$(field healthz_quiet "$b" 3)" "$hello"), verify / bare verify = $(ratio "$(field verify_quiet "$b" 3)" "$ref") (reported)"
    fi
    r=$(ratio "$(field me "$b" 3)" "$ref")
    if [ "$b" = sqlite ]; then
      echo "  [$b] users/me / bare verify = $r (>= 0.5): $(verdict "$r" ">=" 0.5)"
      r=$(ratio "$(field list "$b" 3)" "$ref")
      echo "  [$b] users?limit=20 / bare verify = $r (>= 0.25): $(verdict "$r" ">=" 0.25)"
    else
      echo "  [$b] users/me / bare verify = $r (>= 0.25): $(verdict "$r" ">=" 0.25) (pool wait mean $(get_extra "$b" me_pool_wait_mean_ms) ms)"
      echo "  [$b] users?limit=20 / bare verify = $(ratio "$(field list "$b" 3)" "$ref") (reported)"
    fi
    r=$(ratio "$(field login "$b" 3)" "$(get_extra "$b" argon2_capacity)")
    echo "  [$b] login / raw Argon2id capacity = $r (>= 0.9): $(verdict "$r" ">=" 0.9)"
    r=$(ratio "$(field verify_flood "$b" 5)" "$(field verify "$b" 5)")
    echo "  [$b] verify p99 flood / idle = $r (<= 2): $(verdict "$r" "<=" 2)"
    r=$(mib "$(get_extra "$b" flood_rss_kib)")
    echo "  [$b] flood RSS = $r MiB (< $mem_limit MiB): $(verdict "$r" "<=" "$mem_limit")"
    r=$(mib "$(get_extra "$b" hwm_kib)")
    echo "  [$b] VmHWM = $r MiB (<= $mem_limit MiB): $(verdict "$r" "<=" "$mem_limit")"
    r=$(mib "$(get_extra "$b" idle_rss_kib)")
    echo "  [$b] idle RSS = $r MiB (< 32): $(verdict "$r" "<=" 32)"
  done
  echo
  for b in "${ran[@]}"; do
    printf 'BENCH_MEM backend=%s idle_rss_kib=%s seeded_rss_kib=%s read_rss_kib=%s flood_rss_kib=%s hwm_kib=%s\n' "$b" \
      "$(get_extra "$b" idle_rss_kib)" "$(get_extra "$b" seeded_rss_kib)" "$(get_extra "$b" read_rss_kib)" \
      "$(get_extra "$b" flood_rss_kib)" "$(get_extra "$b" hwm_kib)"
  done
  while read -r c b rps p50 p99 n non2xx errs; do
    printf 'BENCH case=%s backend=%s rps=%s p50_ms=%s p99_ms=%s requests=%s non2xx=%s socket_errors=%s\n' \
      "$c" "$b" "$rps" "$p50" "$p99" "$n" "$non2xx" "$errs"
  done <"$results"
} | tee "$out"
log "summary written to $out"
