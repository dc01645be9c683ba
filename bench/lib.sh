# Shared by the benchmark scripts (bench/load.sh, bench/ab.sh, bench/scale.sh): settings,
# messages, tools, clean-up, the release build, wrk scripts and the result
# table. Sourced, not run; the sourcing script sets `bench_name` first.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
case $target_dir in /*) ;; *) target_dir=$root/$target_dir ;; esac
duration=${BENCH_DURATION:-10}
duration=${duration%s}
connections=${BENCH_CONNECTIONS:-64}
cores=$(nproc)
threads=${BENCH_THREADS:-$cores}
((threads > connections)) && threads=$connections
backends=${BENCH_BACKENDS:-sqlite postgres}
pg_url=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
pg_url=${pg_url%/}
log_level=${BENCH_LOG_LEVEL:-}
out=${BENCH_OUT:-$target_dir/bench-$bench_name.txt}
secret='bench-secret-bench-secret-bench-secret-0123456789'
password='bench-password-0123456789'

fail() { printf '\nERROR: %s\n' "$*" >&2; exit 1; }
log() { printf '==> %s\n' "$*" >&2; }
loud() {
  printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
  printf '!!! %s\n' "$@" >&2
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n' >&2
}

# --- tools -------------------------------------------------------------------

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v wrk >/dev/null; then
  log "installing wrk (apt-get)"
  command -v apt-get >/dev/null || fail "wrk is missing and there is no apt-get: install wrk"
  as_root apt-get update -qq || fail "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null \
    || fail "apt-get install wrk failed"
fi
for tool in curl cargo awk; do
  command -v "$tool" >/dev/null || fail "$tool is missing"
done

# --- cleanup: servers, samplers, wrk, the PostgreSQL database, the temp dir ---

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tessera-$bench_name.XXXXXX")
pids=()
pg_db=  # PostgreSQL databases (names, space-separated) to drop at exit
cleanup() {
  local status=$? db
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for db in $pg_db; do
    psql -q -X "$pg_url/postgres" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 \
      || printf 'WARNING: could not drop database %s\n' "$db" >&2
  done
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build -------------------------------------------------------------------

build_tessera() {
  [ -n "${BENCH_NO_BUILD:-}" ] && return
  log "cargo build --release (tessera)"
  (cd "$root" && CARGO_TARGET_DIR=$target_dir cargo build --release --bin tessera) \
    || fail "cargo build --release failed"
}
tessera=$target_dir/release/tessera

# --- wrk scripts ---------------------------------------------------------------

# Every wrk run ends with one parseable line (latencies in microseconds).
cat >"$tmp/done.lua" <<'EOF'
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKSTAT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
EOF
cp "$tmp/done.lua" "$tmp/get.lua"
{
  cat <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username":"bench","password":"$password"}'
EOF
  cat "$tmp/done.lua"
} >"$tmp/login.lua"

# --- helpers -------------------------------------------------------------------

free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  fail "no free port found"
}

wait_ready() { # url pid
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

kib() { # field of /proc/PID/status, KiB
  local key value rest
  while read -r key value rest; do
    if [ "$key" = "$2:" ]; then echo "$value"; return; fi
  done <"/proc/$1/status"
  echo 0
}

# Samples VmRSS of $1 every 0.1 s into $2 (the maximum, KiB) until killed.
rss_sampler() {
  local max=0 now
  while kill -0 "$1" 2>/dev/null; do
    now=$(kib "$1" VmRSS)
    if ((now > max)); then max=$now; echo "$max" >"$2"; fi
    sleep 0.1
  done
}
start_sampler() { # pid file
  echo 0 >"$2"
  rss_sampler "$1" "$2" &
  sampler=$!
  pids+=("$sampler")
}
stop_sampler() { kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; }

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# A metric's value from /metrics text in file $1, e.g. `tessera_db_pool_wait_seconds_sum`.
metric() { awk -v name="$2" '$1 == name { print $2; found = 1 } END { if (!found) print 0 }' "$1"; }

results=$tmp/results  # case backend rps p50_ms p99_ms requests non2xx socket_errors
: >"$results"

# run_wrk CASE BACKEND SCRIPT URL [wrk args...]: runs wrk for BENCH_DURATION,
# prints the BENCH line, records the result.
run_wrk() {
  local case=$1 backend=$2 script=$3 url=$4 out
  shift 4
  out=$tmp/wrk-$case-$backend.txt
  wrk -t"$threads" -c"$connections" -d"${duration}s" --timeout 10s -s "$script" "$@" "$url" >"$out" 2>&1 \
    || { cat "$out" >&2; fail "wrk failed for $case ($backend)"; }
  record "$case" "$backend" "$out"
}

record() { # case backend wrk-output
  local line
  line=$(grep '^WRKSTAT' "$3" | tail -1) || { cat "$3" >&2; fail "no wrk summary for $1 ($2)"; }
  eval "local ${line#WRKSTAT }"
  local rps p50 p99
  rps=$(awk -v n="$requests" -v d="$duration_us" 'BEGIN { printf "%.0f", n / (d / 1e6) }')
  p50=$(awk -v v="$p50_us" 'BEGIN { printf "%.2f", v / 1000 }')
  p99=$(awk -v v="$p99_us" 'BEGIN { printf "%.2f", v / 1000 }')
  echo "$1 $2 $rps $p50 $p99 $requests $non2xx $socket_errors" >>"$results"
  printf 'BENCH case=%s backend=%s rps=%s p50_ms=%s p99_ms=%s requests=%s non2xx=%s socket_errors=%s\n' \
    "$1" "$2" "$rps" "$p50" "$p99" "$requests" "$non2xx" "$socket_errors" >&2
  if ((non2xx > 0 || socket_errors > 0)); then
    loud "$1 ($2): $non2xx non-2xx answers and $socket_errors socket errors: the figures are suspect"
  fi
}

field() { # case backend column(3=rps 4=p50 5=p99)
  awk -v c="$1" -v b="$2" -v k="$3" '$1 == c && $2 == b { v = $k } END { print (v == "" ? "-" : v) }' "$results"
}

# Memory and pool figures per backend: "backend key value".
extras=$tmp/extras
: >"$extras"
extra() { echo "$1 $2 $3" >>"$extras"; }
get_extra() { awk -v b="$1" -v k="$2" '$1 == b && $2 == k { v = $3 } END { print (v == "" ? "-" : v) }' "$extras"; }

# start_tessera BACKEND DB_URL PORT LOG_LEVEL LOG_FILE: starts tessera with its
# defaults but for the port, the database, the key and raised login throttles
# (an empty LOG_LEVEL keeps the shipped log.level); sets pid.
start_tessera() {
  local level=()
  [ -n "$4" ] && level=(TESSERA__LOG__LEVEL="$4")
  (cd "$tmp/$1" && exec env -u RUST_LOG \
    TESSERA__SERVER__BIND="127.0.0.1:$3" \
    TESSERA__SERVER__ENV=development \
    TESSERA__SERVER__DATA_DIR="$tmp/$1/data" \
    TESSERA__DATABASE__URL="$2" \
    TESSERA__JWT__SECRET="$secret" \
    TESSERA__AUTH__LOGIN_MAX_FAILURES=1000000 \
    TESSERA__AUTH__ADDRESS_MAX_FAILURES=1000000 \
    "${level[@]}" \
    "$tessera" >"$5" 2>&1) &
  pid=$!
  pids+=("$pid")
  wait_ready "http://127.0.0.1:$3/healthz" "$pid" || { cat "$5" >&2; fail "tessera ($1) did not start"; }
}

# seed_users BASE N: registers the `bench` user and N-1 others (user00001...)
# through POST /users, in parallel (Argon2id each); fails unless all N are created.
seed_users() {
  local base=$1 users=$2 created file i
  ((users >= 1)) || fail "seed_users: at least the bench user is needed (got $users)"
  file=$(mktemp "$tmp/seed.XXXXXX")
  {
    printf 'url = "%s/users"\nheader = "Content-Type: application/json"\n' "$base"
    printf 'data = "{\\"username\\":\\"bench\\",\\"email\\":\\"bench@example.com\\",\\"password\\":\\"%s\\"}"\n' "$password"
    printf 'output = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n'
    for i in $(seq 1 "$((users - 1))"); do
      echo next
      printf 'url = "%s/users"\nheader = "Content-Type: application/json"\n' "$base"
      printf 'data = "{\\"username\\":\\"user%05d\\",\\"email\\":\\"user%05d@example.com\\",\\"password\\":\\"%s\\"}"\n' "$i" "$i" "$password"
      printf 'output = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n'
    done
  } >"$file"
  created=$(curl -sS --no-progress-meter -Z --parallel-max "$((cores * 2))" -K "$file" | grep -c '^201$' || true)
  ((created == users)) || fail "seeding $base: $created of $users users created"
}

# bench_token BASE: logs the `bench` user in and prints its access token.
bench_token() {
  local token
  token=$(curl -fsS -X POST "$1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"username\":\"bench\",\"password\":\"$password\"}" | sed -nE 's/.*"access_token":"([^"]+)".*/\1/p')
  [ -n "$token" ] || fail "login of the bench user at $1 gave no access token"
  echo "$token"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
  if (v == "-") { print "n/a"; exit }
  ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0); print ok ? "MET" : "NOT MET" }'; }

