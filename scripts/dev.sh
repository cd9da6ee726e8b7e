#!/usr/bin/env bash
# Local development stack:
#   1. tools (./scripts/ensure-tools.sh)
#   2. a local DynamoDB (moto) on 127.0.0.1:5000, unless something already
#      answers there; log in .local/moto.log, pid in .local/moto.pid
#   3. the table dingdang-local, created from template.yaml
#   4. the platform simulator (dingdang-sim serve) on 127.0.0.1:9100, unless
#      something already answers there: paycgi for refund-api and reconcile
#      (DINGDANG_API_BASE), signed ship and refund notifications to the
#      functions, /admin/pay to pay an order, /fulfil counting fulfilments
#      (FULFILLMENT_URL); log in .local/sim.log, pid in .local/sim.pid
#   5. cargo lambda watch on 127.0.0.1:9000 with dev.env: every function at
#      http://127.0.0.1:9000/lambda-url/<name>/, e.g.
#        POST http://127.0.0.1:9000/lambda-url/ship-notify/
#        GET  http://127.0.0.1:9000/lambda-url/refund-api/orders/<tradeNo>
#      and the reconcile sweep with
#        cargo lambda invoke reconcile --data-ascii '{}'
#   6. the stream pump (dingdang-dev stream-pump), once the watcher answers:
#      cargo lambda watch has no streams, so it reads the table's stream from
#      moto and invokes the entitlements function through the watcher with
#      the stream event Lambda would send; log in .local/pump.log, pid in
#      .local/pump.pid
# The moto also serves Secrets Manager (AWS_ENDPOINT_URL_SECRETS_MANAGER in
# dev.env): with DINGDANG_SECRET_ARN set in dev.env to a secret made there,
# the functions read their keys from it as in AWS (README, "Keys and
# rotation").
# Ctrl-C stops the watcher, the stream pump, and the moto and simulator
# servers this script started. Running it again reuses servers that are
# already up.
set -euo pipefail
cd "$(dirname "$0")/.."

HOST=127.0.0.1
MOTO_PORT=5000
SIM_PORT=9100
WATCH_PORT=9000
TABLE=dingdang-local

./scripts/ensure-tools.sh
mkdir -p .local

# Development configuration (also handed to the functions by cargo lambda,
# and read by the simulator for the platform's side of the keys).
set -a
# shellcheck source=dev.env
. ./dev.env
set +a

answers() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

moto_pid=""
sim_pid=""
pump_pid=""
stop() { # name pid pidfile
  kill -TERM "$2" 2>/dev/null || true
  wait "$2" 2>/dev/null || true
  rm -f "$3"
  echo "dev.sh: stopped $1 (pid $2)" >&2
}
cleanup() {
  if [ -n "$pump_pid" ]; then stop "stream pump" "$pump_pid" .local/pump.pid; fi
  if [ -n "$sim_pid" ]; then stop simulator "$sim_pid" .local/sim.pid; fi
  if [ -n "$moto_pid" ]; then stop moto "$moto_pid" .local/moto.pid; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until $1 answers on port $2 while pid $3 lives (its log: $4).
wait_for() { # name port pid log
  for _ in $(seq 1 150); do
    if answers "$2"; then return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then
      echo "dev.sh: $1 failed to start; see $4:" >&2
      tail -n 20 "$4" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "dev.sh: $1 did not answer on $HOST:$2; see $4" >&2
  return 1
}

if answers "$MOTO_PORT"; then
  echo "dev.sh: something already answers on $HOST:$MOTO_PORT; using it as DynamoDB" >&2
else
  python3 scripts/moto_server.py --host "$HOST" --port "$MOTO_PORT" >>.local/moto.log 2>&1 &
  moto_pid=$!
  echo "$moto_pid" >.local/moto.pid
  wait_for moto "$MOTO_PORT" "$moto_pid" .local/moto.log || exit 1
  echo "dev.sh: moto listening on http://$HOST:$MOTO_PORT (pid $moto_pid, log .local/moto.log)" >&2
fi

cargo build -q -p devkit --bin dingdang-dev
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
"$target_dir/debug/dingdang-dev" create-table --table "$TABLE"

if answers "$SIM_PORT"; then
  echo "dev.sh: something already answers on $HOST:$SIM_PORT; using it as the platform simulator" >&2
else
  cargo build -q -p simulator --bin dingdang-sim
  "$target_dir/debug/dingdang-sim" serve --addr "$HOST:$SIM_PORT" \
    --ship-notify-url "http://$HOST:$WATCH_PORT/lambda-url/ship-notify/" \
    --refund-notify-url "http://$HOST:$WATCH_PORT/lambda-url/refund-notify/" \
    >>.local/sim.log 2>&1 &
  sim_pid=$!
  echo "$sim_pid" >.local/sim.pid
  wait_for simulator "$SIM_PORT" "$sim_pid" .local/sim.log || exit 1
  echo "dev.sh: simulator listening on http://$HOST:$SIM_PORT (pid $sim_pid, log .local/sim.log)" >&2
fi

# The stream pump starts reading (from now on) once the watcher answers,
# and invokes the entitlements function through it.
(
  for _ in $(seq 1 600); do
    if answers "$WATCH_PORT"; then break; fi
    sleep 0.5
  done
  exec "$target_dir/debug/dingdang-dev" stream-pump --table "$TABLE" \
    --invoke-url "http://$HOST:$WATCH_PORT/2015-03-31/functions/entitlements/invocations"
) >>.local/pump.log 2>&1 &
pump_pid=$!
echo "$pump_pid" >.local/pump.pid
echo "dev.sh: stream pump starting once the watcher answers on $HOST:$WATCH_PORT (pid $pump_pid, log .local/pump.log)" >&2

cargo lambda watch -A "$HOST" -P "$WATCH_PORT" --env-file dev.env
