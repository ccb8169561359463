#!/usr/bin/env bash
# Soak: mixed load for a while against the API, a provider and a collector on
# one throw-away PostgreSQL, sampling each process every second, then a growth trend.
#   bench/soak.sh                 # 10 minutes
#   SOAK_DURATION=180 bench/soak.sh
# Load (all at once, steady rates): GET /rates (README query and region queries),
# POST /prices batches, POST /orders, the feed at SOAK_FEED_RATE trades/s through the
# collector, and GET / when the API serves a status page there (detected at start).
# Samples per process: RSS, open descriptors; per second: database connections
# (pg_stat_activity) and the error counts. Reports the slope of a linear fit over the
# second half and fails (exit 1) on any error or on growth (see bench/soak.py).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${SOAK_DURATION:-600}
FEED_RATE=${SOAK_FEED_RATE:-50000}
RESULTS=${BENCH_RESULTS_DIR:-bench/results}
DUMP=${RATES_DUMP:-../shared/data/rates-2021.sql}
[ -f "$DUMP" ] || { echo "soak: $DUMP not found (set RATES_DUMP)" >&2; exit 1; }
scripts/install-deps.sh --bench
if [ -z "${PRICEHUB_BIN:-}" ]; then
  cargo build --release --locked --quiet
  PRICEHUB_BIN=target/release/pricehub
fi

WORK=$(mktemp -d /tmp/pricehub-soak.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  scripts/pg.sh stop "$WORK/pg" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # URL
  for _ in $(seq 1 300); do curl -fs "$1" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "soak: $1 never became ready" >&2; exit 1
}

ADMIN=$(scripts/pg.sh start "$WORK/pg")
psql -q "$ADMIN" -c "CREATE DATABASE soak"
DB=${ADMIN%/postgres}/soak
"$PRICEHUB_BIN" import --database-url "$DB" "$DUMP" >/dev/null

TOKEN=soak-token
API_PORT=$(free_port); FEED_PORT=$(free_port); PROV_HTTP=$(free_port); COLL_HTTP=$(free_port)
export PRICEHUB_LOG=warn
"$PRICEHUB_BIN" serve --database-url "$DB" --listen "127.0.0.1:$API_PORT" \
  --ingest-token "$TOKEN" --btc-rate-fixed "EUR=40000,GBP=30000,USD=50000" \
  --btc-cap 21000000 --rate-limit-per-minute 0 >"$WORK/api.log" 2>&1 &
API_PID=$!; PIDS+=("$API_PID")
"$PRICEHUB_BIN" provider --listen "127.0.0.1:$FEED_PORT" --http-listen "127.0.0.1:$PROV_HTTP" \
  --rate "$FEED_RATE" --seed 10 >"$WORK/provider.log" 2>&1 &
PROV_PID=$!; PIDS+=("$PROV_PID")
wait_ready "http://127.0.0.1:$API_PORT/readyz"
wait_ready "http://127.0.0.1:$PROV_HTTP/readyz"
"$PRICEHUB_BIN" collector --database-url "$DB" --provider "127.0.0.1:$FEED_PORT" \
  --http-listen "127.0.0.1:$COLL_HTTP" --data-dir "$WORK/collector" >"$WORK/collector.log" 2>&1 &
COLL_PID=$!; PIDS+=("$COLL_PID")
wait_ready "http://127.0.0.1:$COLL_HTTP/readyz"

PORTS=$(psql -qAt "$DB" -c "SELECT string_agg(code, ',') FROM (SELECT code FROM ports ORDER BY code LIMIT 20) p")
mkdir -p "$RESULTS"
OUT="$RESULTS/soak-$(date -u +%Y%m%dT%H%M%SZ).md"
set +e
python3 bench/soak.py \
  --duration "$DURATION" --feed-rate "$FEED_RATE" --database-url "$DB" --token "$TOKEN" --ports "$PORTS" \
  --api "http://127.0.0.1:$API_PORT" --process "api=$API_PID=http://127.0.0.1:$API_PORT" \
  --process "provider=$PROV_PID=http://127.0.0.1:$PROV_HTTP" \
  --process "collector=$COLL_PID=http://127.0.0.1:$COLL_HTTP" --out "$OUT"
rc=$?
set -e
for p in api provider collector; do
  if grep -q '"level":"ERROR"' "$WORK/$p.log"; then
    echo "soak: $p logged errors:"; grep '"level":"ERROR"' "$WORK/$p.log" | head -5; rc=1
  fi
done
echo "summary written to $OUT"
exit $rc
