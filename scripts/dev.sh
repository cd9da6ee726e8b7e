#!/usr/bin/env bash
# Local development stack:
#   1. tools (./scripts/ensure-tools.sh)
#   2. a local DynamoDB (moto) on 127.0.0.1:5000, unless something already
#      answers there; log in .local/moto.log, pid in .local/moto.pid
#   3. the table dingdang-local, created from template.yaml
#   4. cargo lambda watch on 127.0.0.1:9000 with dev.env, e.g.
#        POST http://127.0.0.1:9000/lambda-url/ship-notify/
#        GET  http://127.0.0.1:9000/lambda-url/refund-api/orders/<tradeNo>
# Ctrl-C stops the watcher and the moto server this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_HOST=127.0.0.1
MOTO_PORT=5000
TABLE=dingdang-local

./scripts/ensure-tools.sh
mkdir -p .local

# Development configuration (also handed to the functions by cargo lambda).
set -a
# shellcheck source=dev.env
. ./dev.env
set +a

answers() { (exec 3<>"/dev/tcp/$MOTO_HOST/$MOTO_PORT") 2>/dev/null; }

started_pid=""
cleanup() {
  if [ -n "$started_pid" ]; then
    kill -TERM "$started_pid" 2>/dev/null || true
    wait "$started_pid" 2>/dev/null || true
    rm -f .local/moto.pid
    echo "dev.sh: stopped moto (pid $started_pid)" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if answers; then
  echo "dev.sh: something already answers on $MOTO_HOST:$MOTO_PORT; using it" >&2
else
  python3 scripts/moto_server.py --host "$MOTO_HOST" --port "$MOTO_PORT" >>.local/moto.log 2>&1 &
  started_pid=$!
  echo "$started_pid" >.local/moto.pid
  for _ in $(seq 1 100); do
    if answers; then break; fi
    if ! kill -0 "$started_pid" 2>/dev/null; then
      started_pid=""
      echo "dev.sh: moto failed to start; see .local/moto.log:" >&2
      tail -n 20 .local/moto.log >&2
      exit 1
    fi
    sleep 0.2
  done
  answers || { echo "dev.sh: moto did not answer on $MOTO_HOST:$MOTO_PORT" >&2; exit 1; }
  echo "dev.sh: moto listening on http://$MOTO_HOST:$MOTO_PORT (pid $started_pid, log .local/moto.log)" >&2
fi

cargo run -q -p devkit --bin dingdang-dev -- create-table --table "$TABLE"

watch=(cargo lambda watch -A 127.0.0.1 -P 9000 --env-file dev.env)
if [ -z "$started_pid" ]; then
  # Nothing of ours to stop afterwards.
  trap - EXIT INT TERM
  exec "${watch[@]}"
fi
"${watch[@]}"
