#!/usr/bin/env bash
# The test command (README): installs what the tests need when missing, starts a
# throw-away PostgreSQL, then runs lint and the whole test suite against it.
#   scripts/test.sh                 # everything
#   scripts/test.sh --test rates_api   # extra arguments go to `cargo test`
# With CI=true a missing service or missing reference data fails the run instead of
# being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

cleanup() {
  if [ -n "${PG_DIR:-}" ]; then
    scripts/pg.sh stop "$PG_DIR" || true
    rm -rf "$PG_DIR"
  fi
}
trap cleanup EXIT

if [ -z "${PRICEHUB_TEST_DATABASE_URL:-}" ]; then
  PG_DIR=$(mktemp -d /tmp/pricehub-test-pg.XXXXXX)
  chmod 755 "$PG_DIR"
  PRICEHUB_TEST_DATABASE_URL=$(PG_FAST=1 scripts/pg.sh start "$PG_DIR")
  export PRICEHUB_TEST_DATABASE_URL
  echo "test PostgreSQL: $PRICEHUB_TEST_DATABASE_URL"
fi

if [ "${CI:-}" = "true" ]; then
  data=${PRICEHUB_TEST_DATA:-../shared/data}
  [ -f "$data/rates-2021.sql" ] || { echo "CI: reference data missing in $data" >&2; exit 1; }
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked "$@"
