#!/usr/bin/env bash
# Batch ingestion benchmark: a 50,000-row batch committed atomically over HTTP
# (POST /prices, JSON and CSV), side by side with `psql \copy` of the same rows into the
# same throw-away PostgreSQL (default durability), in one run. Two references:
#   raw    \copy into a bare table shaped like prices (no index, no constraint, no
#          trigger): the floor, and the target's reference (HTTP must stay within 2x);
#   prices \copy into the `prices` table itself, as an outside writer such as psql does
#          (set-based port check, derived table maintained synchronously).
#
#   bench/ingest.sh
#
# Environment:
#   BENCH_ROWS=50000      rows per batch
#   BENCH_RUNS=7          measured runs per method (the median is reported)
#   PRICEHUB_BIN=         use this binary instead of building target/release/pricehub
#   RATES_DUMP=../shared/data/rates-2021.sql
#   BENCH_RESULTS_DIR=bench/results
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=${BENCH_ROWS:-50000}
RUNS=${BENCH_RUNS:-7}
DUMP=${RATES_DUMP:-$ROOT/../shared/data/rates-2021.sql}
RESULTS_DIR=${BENCH_RESULTS_DIR:-$ROOT/bench/results}
TOKEN=bench-token

log() { printf '[ingest-bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[[ $ROWS =~ ^[0-9]+$ && $RUNS =~ ^[0-9]+$ ]] || die "BENCH_ROWS and BENCH_RUNS must be integers"
[ -f "$DUMP" ] || die "dump not found: $DUMP (set RATES_DUMP)"

TMP=$(mktemp -d /tmp/pricehub-ingest-bench.XXXXXX)
chmod 755 "$TMP"
PH_PID=""
cleanup() {
  trap - EXIT INT TERM
  [ -n "$PH_PID" ] && kill "$PH_PID" 2>/dev/null && wait "$PH_PID" 2>/dev/null
  "$ROOT/scripts/pg.sh" stop "$TMP/pg" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ROOT/scripts/install-deps.sh" --bench
if [ -z "${PRICEHUB_BIN:-}" ]; then
  log "building release binary"
  (cd "$ROOT" && cargo build --release --quiet)
  PRICEHUB_BIN=$ROOT/target/release/pricehub
fi

log "starting PostgreSQL"
ADMIN=$("$ROOT/scripts/pg.sh" start "$TMP/pg")
DB=${ADMIN%/postgres}/ingest
psql -q "$ADMIN" -c "CREATE DATABASE ingest" >/dev/null
"$PRICEHUB_BIN" import --database-url "$DB" "$DUMP" >/dev/null

log "writing $ROWS rows as JSON and CSV"
python3 - "$TMP" "$ROWS" "$DUMP" <<'EOF'
import json, random, sys, datetime
tmp, n, dump = sys.argv[1], int(sys.argv[2]), sys.argv[3]
random.seed(42)
# Ports that exist in the dump: the first 40 of its ports section.
lines = open(dump, encoding="utf-8").read().split("\n")
start_i = next(i for i, l in enumerate(lines) if l.startswith("COPY") and "ports" in l.split("(")[0])
ports = [l.split("\t")[0] for l in lines[start_i + 1:start_i + 41]]
start = datetime.date(2022, 1, 1)
rows = [(random.choice(ports[:20]), random.choice(ports[20:]), (start + datetime.timedelta(days=i % 365)).isoformat(), random.randint(500, 3000)) for i in range(n)]
with open(f"{tmp}/rows.json", "w") as f:
    json.dump([{"orig_code": o, "dest_code": d, "day": day, "price": p} for o, d, day, p in rows], f, separators=(",", ":"))
with open(f"{tmp}/rows.csv", "w") as f:
    f.write("orig_code,dest_code,day,price\n")
    f.writelines(f"{o},{d},{day},{p}\n" for o, d, day, p in rows)
EOF

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PRICEHUB_LOG=warn "$PRICEHUB_BIN" serve --listen "127.0.0.1:$PORT" --database-url "$DB" --ingest-token "$TOKEN" \
  --ingest-worker false >"$TMP/serve.log" 2>&1 &
PH_PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || die "pricehub did not become ready: $(tail -5 "$TMP/serve.log")"

# One timed run of each method; prints seconds.
run_copy() { # $1 table
  psql -q "$DB" -v ON_ERROR_STOP=1 -c '\timing on' \
    -c "\\copy $1 (orig_code, dest_code, day, price) FROM '$TMP/rows.csv' WITH (FORMAT csv, HEADER true)" \
    | awk '/^Time:/ {printf "%.6f\n", $2 / 1000}'
}
run_http() { # $1 file, $2 content type
  local out
  out=$(curl -s -o "$TMP/resp" -w '%{http_code} %{time_total}' -X POST "http://127.0.0.1:$PORT/prices" \
    -H "Authorization: Bearer $TOKEN" -H "Content-Type: $2" --data-binary "@$1")
  [ "${out%% *}" = 201 ] || die "POST /prices answered ${out%% *}: $(head -c 300 "$TMP/resp")"
  echo "${out#* }"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

psql -q "$DB" -c "CREATE TABLE prices_bare (orig_code text NOT NULL, dest_code text NOT NULL, day date NOT NULL, price integer NOT NULL)"
log "warm-up"
run_copy prices_bare >/dev/null; run_copy prices >/dev/null; run_http "$TMP/rows.json" application/json >/dev/null; run_http "$TMP/rows.csv" text/csv >/dev/null

# Batches arrive sporadically: before each timed batch, let the background compaction of
# the previous one finish (and time how long that takes).
settle() {
  local t0 t1
  t0=$(date +%s%N)
  for _ in $(seq 600); do
    [ "$(psql -tA "$DB" -c "SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM pricehub_batch_seq) <= (SELECT watermark FROM rates_compaction)")" = t ] && break
    sleep 0.05
  done
  t1=$(date +%s%N)
  echo "$(( (t1 - t0) / 1000000 ))" >>"$TMP/settle"
}
: >"$TMP/settle"

log "measuring $RUNS runs of each, interleaved"
: >"$TMP/raw"; : >"$TMP/copy"; : >"$TMP/json"; : >"$TMP/csv"
for _ in $(seq "$RUNS"); do
  settle; run_copy prices_bare >>"$TMP/raw"
  settle; run_http "$TMP/rows.json" application/json >>"$TMP/json"
  settle; run_http "$TMP/rows.csv" text/csv >>"$TMP/csv"
  settle; run_copy prices >>"$TMP/copy"
done
SETTLE_MS=$(sort -g "$TMP/settle" | tail -n 1)
RAW_S=$(median <"$TMP/raw"); COPY_S=$(median <"$TMP/copy"); JSON_S=$(median <"$TMP/json"); CSV_S=$(median <"$TMP/csv")
TOTAL=$(psql -tA "$DB" -c "SELECT COUNT(*) FROM prices")
EXPECTED=$(( 56689 + (1 + RUNS) * 3 * ROWS ))
[ "$TOTAL" = "$EXPECTED" ] || die "prices has $TOTAL rows, expected $EXPECTED"

JSON_MB=$(du -m "$TMP/rows.json" | cut -f1); CSV_MB=$(du -m "$TMP/rows.csv" | cut -f1)
mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
REPORT="$RESULTS_DIR/ingest-$STAMP.md"
python3 - "$RAW_S" "$COPY_S" "$JSON_S" "$CSV_S" "$ROWS" "$RUNS" "$JSON_MB" "$CSV_MB" "$TOTAL" "$SETTLE_MS" >"$REPORT" <<'EOF'
import sys
raw, copy, js, csv = map(float, sys.argv[1:5]); rows, runs = int(sys.argv[5]), int(sys.argv[6])
print(f"# Batch ingestion benchmark ({rows} rows, median of {runs} runs)\n")
print("| method | time (ms) | rows/s | ratio to raw \\copy | target: ≤ 2× raw |")
print("|---|---|---|---|---|")
print(f"| psql `\\copy` into a bare table (raw) | {raw*1000:.1f} | {rows/raw:,.0f} | 1.00 | reference |")
print(f"| psql `\\copy` into `prices` (outside writer) | {copy*1000:.1f} | {rows/copy:,.0f} | {copy/raw:.2f} | — |")
for name, t in (("POST /prices, JSON", js), ("POST /prices, CSV", csv)):
    ok = "PASS" if t <= 2 * raw else "MISS"
    print(f"| {name} | {t*1000:.1f} | {rows/t:,.0f} | {t/raw:.2f} | {ok} |")
print(f"\nBodies: JSON {sys.argv[7]} MB, CSV {sys.argv[8]} MB. HTTP times are curl's total (upload, "
      "parse, validate every row, COPY, commit, response). Row count checked: "
      f"{sys.argv[9]} rows in `prices` at the end, as expected. Background compaction of a "
      f"batch into `price_daily` finished within {sys.argv[10]} ms of the previous request "
      "(longest wait before a timed run); answers are exact before and after it.")
EOF
cat "$REPORT"
log "written to $REPORT"
