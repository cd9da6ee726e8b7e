#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails on any
# crash (a panic, a failed assertion, a sanitizer report, a timeout or an
# out-of-memory).
#
#   ./scripts/fuzz.sh                    every target, 60 s each
#   FUZZ_SECS=300 ./scripts/fuzz.sh      longer
#   ./scripts/fuzz.sh protocol ...       only these targets
#
# The seeds in fuzz/corpus/<target>/ are read, never written: new inputs go
# to a temporary directory. A crashing input is kept in
# fuzz/artifacts/<target>/ (git-ignored); reproduce it with
#   cargo +nightly fuzz run -s none -a <target> fuzz/artifacts/<target>/<file>
# Builds with debug assertions and overflow checks, and without a
# sanitizer by default (the code under test is safe Rust: a crash is a panic,
# and no sanitizer halves the build time and doubles the executions);
# FUZZ_SANITIZER=address (or another cargo-fuzz sanitizer) adds one. Uses the
# nightly toolchain when one is installed, else the default toolchain (with
# RUSTC_BOOTSTRAP=1 when a sanitizer needs -Z flags). Installs cargo-fuzz
# when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${FUZZ_SECS:-60}"
case "$secs" in
  '' | *[!0-9]*) echo "fuzz.sh: FUZZ_SECS must be whole seconds" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install --locked --quiet cargo-fuzz
fi
sanitizer="${FUZZ_SANITIZER:-none}"
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  fuzz=(cargo fuzz)
  if [ "$sanitizer" != none ]; then
    echo "fuzz.sh: no nightly toolchain; $(rustc --version) with RUSTC_BOOTSTRAP=1 for -Zsanitizer" >&2
    export RUSTC_BOOTSTRAP=1
  fi
fi
flags=(--sanitizer "$sanitizer" --debug-assertions)

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <("${fuzz[@]}" list)
fi
if [ "${#targets[@]}" -eq 0 ]; then
  echo "fuzz.sh: no fuzz targets" >&2
  exit 1
fi

echo "fuzz.sh: building ${targets[*]}" >&2
for target in "${targets[@]}"; do
  "${fuzz[@]}" build "${flags[@]}" "$target"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
summary=()
for target in "${targets[@]}"; do
  mkdir -p "$work/$target" "fuzz/corpus/$target"
  log="$work/$target.log"
  echo "==> fuzz $target: ${secs}s" >&2
  # -timeout: one input may take at most 10 s; -rss_limit_mb: 2 GiB.
  if "${fuzz[@]}" run "${flags[@]}" "$target" "$work/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$target")
    tail -n 60 "$log" >&2
  fi
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  units="$(ls "$work/$target" | wc -l)"
  line="fuzz $target: $status, ${execs:-?} executions in ${secs}s, $units new corpus units"
  summary+=("$line")
  echo "==> $line" >&2
done

printf '%s\n' "${summary[@]}" >&2
if [ "${#failed[@]}" -gt 0 ]; then
  (IFS=','; echo "fuzz.sh: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2)
  exit 1
fi
echo "fuzz.sh: all targets ran ${secs}s without a crash" >&2
