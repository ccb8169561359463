#!/usr/bin/env bash
# Order benchmarks on PostgreSQL, printed and appended to docs/orders.md by hand:
#   1. POST /orders throughput with 64 concurrent clients (cap raised so it is not hit);
#   2. the same load against a cap that fills mid-run: the cap must hold exactly;
#   3. GET /orders page 1 vs page 1,000 (limit 50) with 100,000 orders.
# Uses a throw-away PostgreSQL (durable settings: fsync on) from scripts/pg.sh, the
# release binary, wrk. Everything runs on 127.0.0.1 and stops by itself.
#   bench/orders.sh [DURATION_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
scripts/install-deps.sh --bench
cargo build --release --locked --quiet
BIN=target/release/pricehub

PG_DIR=$(mktemp -d /tmp/pricehub-bench-pg.XXXXXX)
chmod 755 "$PG_DIR"
API_PID=""
cleanup() {
  [ -n "$API_PID" ] && kill "$API_PID" 2>/dev/null && wait "$API_PID" 2>/dev/null || true
  scripts/pg.sh stop "$PG_DIR" || true
  rm -rf "$PG_DIR"
}
trap cleanup EXIT
ADMIN=$(scripts/pg.sh start "$PG_DIR")
psql -q "$ADMIN" -c "CREATE DATABASE bench_orders"
DB=${ADMIN%/postgres}/bench_orders
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT

start_api() { # CAP
  "$BIN" serve --database-url "$DB" --listen "127.0.0.1:$PORT" --log warn \
    --btc-rate-fixed "EUR=40000,GBP=30000,USD=50000" --btc-cap "$1" \
    --rate-limit-per-minute 0 --db-max-connections 32 &
  API_PID=$!
  for _ in $(seq 1 100); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "API did not start" >&2; exit 1
}
stop_api() { kill "$API_PID"; wait "$API_PID" 2>/dev/null || true; API_PID=""; }
sql() { psql -qAt "$DB" -c "$1"; }

echo "== 1. POST /orders, 64 connections, ${DURATION}s, cap not reached"
start_api 21000000
wrk -t2 -c64 -d"${DURATION}s" --latency -s bench/orders_post.lua "$BASE" | tee /tmp/orders-bench-post.txt
echo "orders stored: $(sql 'SELECT count(*) FROM orders')"
echo "sum(btc_amount) = $(sql 'SELECT sum(btc_amount) FROM orders'), ledger = $(sql 'SELECT total_sats::numeric / 100000000 FROM btc_ledger')"
stop_api

echo "== 2. the cap fills mid-run: 100 EUR orders (0.0025 BTC each) against a cap of 5 BTC"
sql "TRUNCATE orders; UPDATE btc_ledger SET total_sats = 0"
start_api 5
wrk -t2 -c64 -d"${DURATION}s" -s bench/orders_post_100eur.lua "$BASE/orders" | tee /tmp/orders-bench-cap.txt
echo "orders stored: $(sql 'SELECT count(*) FROM orders') (exactly 2000 fit)"
[ "$(sql 'SELECT count(*) FROM orders')" = 2000 ] || { echo "CAP VIOLATED OR UNDERFILLED" >&2; exit 1; }
echo "sum(btc_amount) = $(sql 'SELECT sum(btc_amount) FROM orders') (cap 5), ledger = $(sql 'SELECT total_sats::numeric / 100000000 FROM btc_ledger')"
stop_api

echo "== 3. page 1 vs page 1000 with 100,000 orders"
sql "TRUNCATE orders;
     INSERT INTO orders (id, created_at, currency, amount, rate, btc_amount)
     SELECT gen_random_uuid(), now() - make_interval(secs => g / 1000.0), 'EUR', 100, 40000, 0.0025
     FROM generate_series(1, 100000) g;
     UPDATE btc_ledger SET total_sats = 100000::bigint * 250000; ANALYZE orders"
start_api 21000000
CURSOR=$(sql "SELECT (extract(epoch FROM created_at) * 1000000)::bigint || '_' || replace(id::text, '-', '')
              FROM orders ORDER BY created_at DESC, id DESC OFFSET 49949 LIMIT 1")
echo "page 1000 cursor: $CURSOR"
POS=$(sql "SELECT created_at || '|' || id FROM orders ORDER BY created_at DESC, id DESC OFFSET 49949 LIMIT 1")
echo "plan of page 1000:"
psql -qAt "$DB" -c "EXPLAIN (ANALYZE, COSTS OFF) SELECT o.id::text, o.created_at, o.currency, o.amount, o.rate, o.btc_amount FROM orders o
  WHERE (o.created_at, o.id) < ('${POS%%|*}'::timestamptz, '${POS##*|}'::uuid)
  ORDER BY o.created_at DESC, o.id DESC LIMIT 51"
curl -fs "$BASE/orders?limit=50&cursor=$CURSOR" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("page 1000 has", len(d["orders"]), "orders")'
for page in 1 1000; do
  if [ "$page" = 1 ]; then URL="$BASE/orders?limit=50"; else URL="$BASE/orders?limit=50&cursor=$CURSOR"; fi
  echo "-- page $page"
  wrk -t2 -c16 -d"${DURATION}s" --latency "$URL" | tee "/tmp/orders-bench-page$page.txt"
done
stop_api
