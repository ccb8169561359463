#!/usr/bin/env bash
# The test command (README): installs what the tests need when missing, starts a
# throw-away PostgreSQL and Redis, then runs lint and the whole test suite against them.
#   scripts/test.sh                 # everything
#   scripts/test.sh --test api rates_api::   # extra arguments go to `cargo test`
# With CI=true a missing service or missing reference data fails the run instead of
# being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every stage prints how long it took, and the run ends with a table of them.
STAGE_TIMES=()
RUN_START=$SECONDS
stage() {
  local name=$1 t0=$SECONDS
  shift
  echo "==> stage $name: $*"
  "$@"
  STAGE_TIMES+=("$(printf '%-22s %5d s' "$name" $((SECONDS - t0)))")
  echo "<== stage $name: $((SECONDS - t0)) s"
}
stage_summary() {
  echo "---- stage times ----"
  printf '%s\n' "${STAGE_TIMES[@]}"
  printf '%-22s %5d s\n' total $((SECONDS - RUN_START))
}

stage install-deps scripts/install-deps.sh

cleanup() {
  if [ -n "${PG_DIR:-}" ]; then
    scripts/pg.sh stop "$PG_DIR" || true
    rm -rf "$PG_DIR"
  fi
  if [ -n "${REDIS_DIR:-}" ]; then
    if [ -f "$REDIS_DIR/redis.pid" ]; then kill "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null || true; fi
    rm -rf "$REDIS_DIR"
  fi
}
trap 'stage_summary; cleanup' EXIT

if [ -z "${PRICEHUB_TEST_DATABASE_URL:-}" ]; then
  PG_DIR=$(mktemp -d /tmp/pricehub-test-pg.XXXXXX)
  chmod 755 "$PG_DIR"
  PRICEHUB_TEST_DATABASE_URL=$(PG_FAST=1 scripts/pg.sh start "$PG_DIR")
  export PRICEHUB_TEST_DATABASE_URL
  echo "test PostgreSQL: $PRICEHUB_TEST_DATABASE_URL"
fi

if [ -z "${PRICEHUB_TEST_REDIS_URL:-}" ]; then
  REDIS_DIR=$(mktemp -d /tmp/pricehub-test-redis.XXXXXX)
  REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes \
    --pidfile "$REDIS_DIR/redis.pid" --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log"
  for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  export PRICEHUB_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
  echo "test Redis: $PRICEHUB_TEST_REDIS_URL"
fi

if [ "${CI:-}" = "true" ]; then
  data=${PRICEHUB_TEST_DATA:-../shared/data}
  [ -f "$data/rates-2021.sql" ] || { echo "CI: reference data missing in $data" >&2; exit 1; }
fi

stage fmt cargo fmt --all -- --check
stage clippy cargo clippy --all-targets --locked -- -D warnings
stage cargo-test cargo test --all-targets --locked "$@"
# Stages after the Rust suite run only on a whole run (no extra arguments).
# Each checks one part of the delivery kit against the real tool (one line each).
if [ $# -eq 0 ]; then
  stage schemathesis scripts/test-schemathesis.sh
  stage observability scripts/test-observability.sh
  stage containers scripts/test-containers.sh
  stage delivery scripts/test-delivery.sh
  # cargo-fuzz targets, FUZZ_TIME (default 60) s each, two at a time (docs/fuzzing.md).
  stage fuzz scripts/fuzz.sh
fi
