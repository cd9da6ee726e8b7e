#!/usr/bin/env bash
# Everything CI checks, runnable locally (also while ./scripts/dev.sh runs):
#   a private moto server on a free port for the tests that need DynamoDB,
#   cargo fmt --check, cargo clippy -D warnings, cargo nextest (or cargo test),
#   the fuzz targets for a bounded time (CI, or FUZZ=1: scripts/fuzz.sh),
#   cfn-lint, the OpenAPI contract (scripts/openapi-check.sh) and, when the
#   SAM CLI is in .local/samvenv, sam validate --lint.
# Every step runs; the script exits non-zero when any of them failed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CI:-}" = "true" ]; then
  export SAM=1
  export FUZZ=1
fi
./scripts/ensure-tools.sh
mkdir -p .local

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

moto_pid=""
moto_log=""
stop_moto() {
  if [ -n "$moto_pid" ]; then
    kill -TERM "$moto_pid" 2>/dev/null || true
    wait "$moto_pid" 2>/dev/null || true
    moto_pid=""
  fi
  if [ -n "$moto_log" ]; then
    rm -f "$moto_log"
  fi
}
trap stop_moto EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Start moto on a free port (a few tries: the port may be taken in between).
port=""
for _ in 1 2 3; do
  port="$(free_port)"
  moto_log="$(mktemp .local/moto-test.XXXXXX.log)"
  python3 scripts/moto_server.py --host 127.0.0.1 --port "$port" --quiet >"$moto_log" 2>&1 &
  moto_pid=$!
  for _ in $(seq 1 150); do
    if grep -q '^moto listening' "$moto_log" 2>/dev/null || ! kill -0 "$moto_pid" 2>/dev/null; then
      break
    fi
    sleep 0.2
  done
  if grep -q '^moto listening' "$moto_log"; then
    break
  fi
  echo "test.sh: moto did not start on port $port:" >&2
  tail -n 20 "$moto_log" >&2
  stop_moto
  port=""
done
if [ -z "$port" ]; then
  echo "test.sh: could not start moto" >&2
  exit 1
fi
echo "test.sh: moto listening on http://127.0.0.1:$port" >&2

export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port"
# moto serves Secrets Manager on the same port (keys read at run time).
export AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:$port"
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test

failed=()
step() {
  local name="$1"
  shift
  echo "==> $name" >&2
  if "$@"; then
    echo "==> $name: ok" >&2
  else
    echo "==> $name: FAILED" >&2
    failed+=("$name")
  fi
}

step "cargo fmt" cargo fmt --all --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
# The library without its "aws" feature (what fuzz/ builds): protocol,
# signing and domain rules only.
step "dingdang without aws" cargo clippy -p dingdang --no-default-features --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  step "cargo nextest" cargo nextest run --workspace --no-fail-fast
else
  step "cargo test" cargo test --workspace --no-fail-fast
fi
# A short smoke run of the benchmark driver against the debug build (figures
# of a release run: BENCHMARKS.md). Fails when a notification is not
# answered SUCCESS or takes more DynamoDB round trips than budgeted.
bench_smoke() {
  cargo build -q -p ship-notify -p bench &&
    "${CARGO_TARGET_DIR:-target}/debug/lambda-bench" \
      --binary "${CARGO_TARGET_DIR:-target}/debug/ship-notify" \
      --events 20 --duplicates 20 --timeout-secs 300
}
step "bench smoke" bench_smoke
# The reconcile scale benchmark, small: fails unless every lost payment and
# finished refund is found.
step "reconcile-scale smoke" "${CARGO_TARGET_DIR:-target}/debug/reconcile-scale" \
  --abandoned 200 --lost 5 --refunds 2 --page-size 20
# .cargo/config.toml builds aws-lc without CPU jitter entropy (31 ms of CPU
# on every cold start, BENCHMARKS.md): its collector must not be linked.
no_jitter_entropy() {
  local symbols
  symbols="$(nm "${1:-${CARGO_TARGET_DIR:-target}/debug/ship-notify}")" || return 1
  ! grep -q jent_entropy <<<"$symbols"
}
step "aws-lc without jitter entropy" no_jitter_entropy
step "cfn-lint" cfn-lint template.yaml
step "openapi" ./scripts/openapi-check.sh
if [ -x .local/samvenv/bin/sam ]; then
  step "sam validate" env SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 \
    .local/samvenv/bin/sam validate --lint --template template.yaml
else
  echo "==> sam validate: skipped (SAM CLI not in .local/samvenv; SAM=1 ./scripts/ensure-tools.sh installs it)" >&2
fi

# Every cargo-fuzz target for a bounded time (FUZZ_SECS each, default 60);
# in CI, or with FUZZ=1.
if [ "${FUZZ:-0}" = 1 ]; then
  step "fuzz" ./scripts/fuzz.sh
fi

if [ "${#failed[@]}" -gt 0 ]; then
  (IFS=','; echo "test.sh: FAILED: ${failed[*]}" >&2)
  exit 1
fi
echo "test.sh: all checks passed" >&2
