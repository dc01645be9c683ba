#!/usr/bin/env bash
# Runs every cargo-fuzz target of tessera for FUZZ_SECONDS each (default 60),
# starting from the committed seeds (fuzz/seeds/<target>) and the local
# corpus (fuzz/corpus/<target>, not committed). Exits non-zero if any target
# fails to build or finds a crash; crashing inputs are kept under
# fuzz/artifacts/<target>/. Usage, from anywhere:
#
#   bash fuzz/run.sh                          # every target, 60 s each
#   FUZZ_SECONDS=600 bash fuzz/run.sh token_structured
#
# Needs a C compiler (tessera bundles SQLite, libpq and OpenSSL); uses the
# nightly toolchain if installed, else stable with RUSTC_BOOTSTRAP=1.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/fuzz/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
logs="$CARGO_TARGET_DIR/fuzz-logs"

log() { printf '\n==> %s\n' "$*"; }

# cargo fuzz passes unstable rustc flags (-Zsanitizer): nightly, or else the
# stable toolchain told to accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=+nightly
else
  echo "note: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1" >&2
  toolchain=+stable
  export RUSTC_BOOTSTRAP=1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked || exit 1
fi
cargo fuzz --version

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo "$toolchain" fuzz list)
fi
if [ ${#targets[@]} -eq 0 ]; then
  echo "ERROR: no fuzz targets found" >&2
  exit 1
fi

log "building ${targets[*]}"
for target in "${targets[@]}"; do
  cargo "$toolchain" fuzz build "$target" || {
    echo "ERROR: fuzz target $target does not build" >&2
    exit 1
  }
done

mkdir -p "$logs"
failed=()
summary=()
for target in "${targets[@]}"; do
  log "fuzzing $target for ${seconds}s"
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  inputs=("$corpus")
  [ -d "fuzz/seeds/$target" ] && inputs+=("fuzz/seeds/$target")
  cargo "$toolchain" fuzz run "$target" "${inputs[@]}" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 \
    -print_final_stats=1 2>&1 | tee "$logs/$target.log"
  status=${PIPESTATUS[0]}
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$target.log" | grep -o '[0-9]*$' | tail -1)
  took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$logs/$target.log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -1)
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    summary+=("$(printf '%-18s FAILED (exit %s): see %s and fuzz/artifacts/%s/' "$target" "$status" "$logs/$target.log" "$target")")
  else
    summary+=("$(printf '%-18s ok: %s executions in %s s' "$target" "${runs:-?}" "${took:-?}")")
  fi
done

log "summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "ERROR: fuzzing found a problem in: ${failed[*]}" >&2
  echo "Reproduce with: cargo $toolchain fuzz run <target> fuzz/artifacts/<target>/<file>" >&2
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no crash"
