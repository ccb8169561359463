#!/usr/bin/env bash
# Feed throughput benchmark (the feed performance targets):
#   provider firehose -> collector -> PostgreSQL for DURATION seconds at RATE trades/s,
#   the stored count checked exactly, the collector's peak RSS (VmHWM), and side by side
#   a psql \copy of the same rows from a CSV file into the same table (ratio printed).
#
#   bench/feed.sh                  RATE=250000 DURATION=60 by default
#   RATE=300000 DURATION=30 bench/feed.sh
#
# PostgreSQL is a throw-away server from scripts/pg.sh with durable settings (fsync on).
# Results are appended to bench/results/feed.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-250000}
DURATION=${DURATION:-60}
N=$((RATE * DURATION))
BIN=${BIN:-target/release/pricehub}
[ -x "$BIN" ] || cargo build --release
WORK=$(mktemp -d /tmp/pricehub-bench-feed.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/pg.sh stop "$WORK/pg" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metric() { # URL NAME -> value or empty
  { curl -fs --max-time 5 "$1" 2>/dev/null || true; } | awk -v n="$2" '$1 == n { print $2; exit }'
}

ADMIN=$(scripts/pg.sh start "$WORK/pg")
DB=${ADMIN%/postgres}/feedbench
# Durable (fsync, synchronous_commit, full_page_writes on); only checkpoints are spaced
# out so that WAL volume, not checkpoint storms, is what both contenders pay for.
psql -qX "$ADMIN" -c "ALTER SYSTEM SET max_wal_size = '16GB'" -c "SELECT pg_reload_conf()" >/dev/null
psql -qX "$ADMIN" -c "CREATE DATABASE feedbench" >/dev/null
"$BIN" migrate --database-url "$DB" --log warn >/dev/null

PP=$(free_port); PH=$(free_port); CH=$(free_port)
"$BIN" provider --listen "127.0.0.1:$PP" --http-listen "127.0.0.1:$PH" \
  --rate "$RATE" --max-trades "$N" --wait-for-clients 1 --seed 1 \
  --client-buffer 2000000 --log warn 2>"$WORK/provider.log" &
PIDS+=($!)
sleep 0.3
"$BIN" collector --provider "127.0.0.1:$PP" --database-url "$DB" \
  --http-listen "127.0.0.1:$CH" --data-dir "$WORK/collector" --log warn 2>"$WORK/collector.log" &
CPID=$!
PIDS+=($CPID)

URL="http://127.0.0.1:$CH/metrics"
start=""; stored=0; spool_peak=0
deadline=$(( $(date +%s) + DURATION * 4 + 60 ))
while :; do
  received=$(metric "$URL" pricehub_feed_trades_received_total); received=${received:-0}
  stored=$(metric "$URL" pricehub_feed_trades_stored_total); stored=${stored:-0}
  spool=$(metric "$URL" pricehub_feed_spool_bytes); spool=${spool:-0}
  [ "${spool%.*}" -gt "$spool_peak" ] && spool_peak=${spool%.*}
  if [ -z "$start" ] && [ "$received" != 0 ]; then start=$(date +%s.%N); fi
  if [ -z "${recv_end:-}" ] && [ "$received" = "$N" ]; then recv_end=$(date +%s.%N); fi
  [ "$stored" = "$N" ] && break
  if [ "$(date +%s)" -gt "$deadline" ]; then echo "timed out: stored $stored of $N" >&2; break; fi
  sleep 0.2
done
end=$(date +%s.%N)
hwm_kb=$(awk '/VmHWM/ { print $2 }' "/proc/$CPID/status")
dropped=$(metric "http://127.0.0.1:$PH/metrics" 'pricehub_provider_clients_dropped_total{reason="lagged"}')
lag_sum=$(metric "$URL" pricehub_feed_lag_seconds_sum); lag_count=$(metric "$URL" pricehub_feed_lag_seconds_count)
kill -TERM "$CPID"; wait "$CPID" || true

rows=$(psql -qtAX "$DB" -c "SELECT COUNT(*) FROM trades")
distinct=$(psql -qtAX "$DB" -c "SELECT COUNT(DISTINCT (run_id, seq)) FROM trades")
ticks=$(psql -qtAX "$DB" -c "SELECT SUM(ticks) FROM instruments")

# The same rows through psql's \copy into the same (emptied) table: the raw COPY rate.
COLS="symbol, ts_ms, price, size, run_id, seq, received_ms"
psql -qX "$DB" -c "\\copy (SELECT $COLS FROM trades ORDER BY id) TO '$WORK/trades.csv' CSV"
psql -qX "$DB" -c "TRUNCATE trades" -c "VACUUM ANALYZE trades" >/dev/null
c0=$(date +%s.%N)
psql -qX "$DB" -c "\\copy trades ($COLS) FROM '$WORK/trades.csv' CSV"
c1=$(date +%s.%N)
copied=$(psql -qtAX "$DB" -c "SELECT COUNT(*) FROM trades")

report=$(python3 - "$N" "$rows" "$distinct" "$ticks" "$start" "$end" "$c0" "$c1" "$hwm_kb" "${dropped:-0}" "$spool_peak" "${lag_sum:-0}" "${lag_count:-0}" "$copied" "$RATE" "$DURATION" "${recv_end:-$end}" <<'PY'
import sys
(n, rows, distinct, ticks, start, end, c0, c1, hwm, dropped, spool, lag_sum, lag_count, copied, rate, duration, recv_end) = sys.argv[1:]
n, rows, distinct, ticks, copied = int(n), int(rows), int(distinct), int(ticks or 0), int(copied)
pipe = float(end) - float(start)
copy = float(c1) - float(c0)
ok = rows == n and distinct == n and ticks == n and copied == n
print(f"feed benchmark: target {int(rate):,} trades/s for {duration} s ({n:,} trades)")
recv = float(recv_end) - float(start)
print(f"  received     : {n:,} in {recv:.2f} s = {n / recv:,.0f} trades/s from the provider (collector reading, no loss)")
print(f"  pipeline     : {rows:,} stored in {pipe:.2f} s = {rows / pipe:,.0f} trades/s sustained "
      f"(first receipt to last commit)")
print(f"  exactness    : stored {rows:,}, distinct receipts {distinct:,}, instrument ticks {ticks:,} -> "
      f"{'OK, zero loss, zero duplicates' if ok else 'MISMATCH'}")
print(f"  slow-client drops: {int(float(dropped))}; spool peak: {int(spool):,} bytes; "
      f"mean batch lag: {float(lag_sum) / max(float(lag_count), 1):.3f} s")
print(f"  collector peak RSS (VmHWM): {int(hwm) / 1024:.1f} MB")
print(f"  psql \\copy of the same {copied:,} rows from CSV into the same table: {copy:.2f} s = {copied / copy:,.0f} rows/s")
print(f"  ratio pipeline / raw copy: {(rows / pipe) / (copied / copy):.2f} (time ratio {pipe / copy:.2f}x)")
PY
)
echo "$report"
mkdir -p bench/results
{ echo "## $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?') $(nproc) cores"; echo "$report"; echo; } >> bench/results/feed.txt
