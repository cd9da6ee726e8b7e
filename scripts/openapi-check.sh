#!/usr/bin/env bash
# Checks docs/openapi.yaml, the partner API's contract:
#   1. lints it (openapi-spec-validator, offline);
#   2. serves the real handlers locally (tests/examples/serve_api.rs: a
#      fresh table on the local DynamoDB, the platform simulator behind the
#      API) and runs schemathesis against them with every check but
#      `ignored_auth` (the AWS_IAM authorizer is API Gateway's, not the
#      function's, so locally nothing refuses an unsigned request).
#
#   ./scripts/openapi-check.sh            lint and contract test
#   ./scripts/openapi-check.sh --lint     lint only
#
# Uses AWS_ENDPOINT_URL_DYNAMODB when set (scripts/test.sh sets it); the
# server otherwise starts its own moto. The tools live in .local/stvenv
# (./scripts/ensure-tools.sh installs them). Examples per operation:
# OPENAPI_MAX_EXAMPLES (default 30); time budget OPENAPI_MAX_TIME seconds
# (default 60). OPENAPI_ARGS: more schemathesis options (e.g. a report).
set -euo pipefail
cd "$(dirname "$0")/.."

SPEC=docs/openapi.yaml
VENV=.local/stvenv
lint_only=0
for arg in "$@"; do
  case "$arg" in
    --lint) lint_only=1 ;;
    *) echo "openapi-check.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

if [ ! -x "$VENV/bin/schemathesis" ] || [ ! -x "$VENV/bin/openapi-spec-validator" ]; then
  echo "openapi-check.sh: $VENV is missing the tools; run ./scripts/ensure-tools.sh" >&2
  exit 1
fi

"$VENV/bin/openapi-spec-validator" "$SPEC"
if [ "$lint_only" = 1 ]; then
  exit 0
fi

export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"

read -r -a OPENAPI_EXTRA_ARGS <<<"${OPENAPI_ARGS:-}"
cargo build -q -p dingdang-tests --example serve_api
target_dir="$(cargo metadata -q --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
mkdir -p .local
out="$(mktemp .local/serve-api.XXXXXX.log)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -f "$out"
}
trap cleanup EXIT

# The first line of its output is the base URL; the rest are its logs and
# metric lines.
"$target_dir/debug/examples/serve_api" >"$out" 2>&1 &
server_pid=$!
base=""
for _ in $(seq 1 300); do
  base="$(head -n 1 "$out" | grep -E '^http://127\.0\.0\.1:[0-9]+$' || true)"
  if [ -n "$base" ] || ! kill -0 "$server_pid" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
if [ -z "$base" ]; then
  echo "openapi-check.sh: the API server did not start:" >&2
  tail -n 20 "$out" >&2
  exit 1
fi
echo "openapi-check.sh: API served at $base" >&2

"$VENV/bin/schemathesis" --no-color --config-file scripts/schemathesis.toml run "$SPEC" \
  --url "$base" \
  --checks all \
  --exclude-checks ignored_auth,missing_required_header \
  --generation-with-security-parameters false \
  --max-examples "${OPENAPI_MAX_EXAMPLES:-30}" \
  --max-time "${OPENAPI_MAX_TIME:-60}" \
  --request-timeout 10 \
  --seed "${OPENAPI_SEED:-20240101}" \
  --generation-database none \
  --workers 2 \
  "${OPENAPI_EXTRA_ARGS[@]}"
