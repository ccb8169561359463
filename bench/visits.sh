#!/usr/bin/env bash
# Status-page visit counting on PostgreSQL: GET / (each request one counted visit)
# side by side with GET /livez (the HTTP floor) in the same run, at 16 connections.
#
#   bench/visits.sh
#
#   1. installs wrk/PostgreSQL when missing and builds pricehub --release (skipped when
#      PRICEHUB_BIN is set);
#   2. starts a throw-away PostgreSQL (default durability: fsync and synchronous commit
#      on) and `pricehub serve` on it, trusting 127.0.0.1 as a proxy;
#   3. runs, after a warm-up:
#        wrk /livez                                   (floor, no database)
#        wrk /            one visitor                 (every visit updates one row)
#        wrk /            many visitors               (X-Forwarded-For from a pool of
#                                                       10,000 addresses, bench/visits.lua)
#   4. checks the totals: the visits stored in PostgreSQL equal the server's
#      pricehub_status_visits_total, and wrk's completed requests within the requests
#      still in flight when wrk stopped (at most one per connection);
#   5. prints a summary and writes it to bench/results/visits-<UTC timestamp>.md.
# Environment: BENCH_DURATION=10, BENCH_WARMUP=3, BENCH_CONNECTIONS=16, BENCH_THREADS=2,
#              PRICEHUB_BIN, BENCH_RESULTS_DIR=bench/results.
# Target (SPEC): >= 5,000 visits/s at 16 connections with exact totals. Benchmarks
# print numbers; they never fail on them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-3}
CONNS=${BENCH_CONNECTIONS:-16}
THREADS=${BENCH_THREADS:-2}
RESULTS_DIR=${BENCH_RESULTS_DIR:-$ROOT/bench/results}
TARGET=5000

log() { printf '[visits-bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for v in DURATION WARMUP CONNS THREADS; do
  [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || die "$v must be a positive integer, got '${!v}'"
done

TMP=""
PH_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$PH_PID" ] && kill -0 "$PH_PID" 2>/dev/null; then
    kill -TERM "$PH_PID" 2>/dev/null || true
    wait "$PH_PID" 2>/dev/null || true
  fi
  if [ -n "$TMP" ]; then
    "$ROOT/scripts/pg.sh" stop "$TMP/pg" >/dev/null 2>&1 || true
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)
"$ROOT/scripts/install-deps.sh" --bench
for t in wrk curl python3 psql; do command -v "$t" >/dev/null || die "$t not found"; done
if [ -n "${PRICEHUB_BIN:-}" ]; then
  BIN=$PRICEHUB_BIN
else
  log "building pricehub (cargo build --release)"
  (cd "$ROOT" && cargo build --release)
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/pricehub
fi
[ -x "$BIN" ] || die "pricehub binary not found at $BIN"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pricehub-visits-bench.XXXXXX")
chmod 755 "$TMP"
log "starting a throw-away PostgreSQL (default durability)"
ADMIN_URL=$(PG_FAST=0 "$ROOT/scripts/pg.sh" start "$TMP/pg")
DB_URL=${ADMIN_URL%/postgres}/visits
psql -q -X -v ON_ERROR_STOP=1 -d "$ADMIN_URL" -c 'CREATE DATABASE visits'
PG_VERSION=$(psql -X -At -d "$ADMIN_URL" -c 'SHOW server_version')

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
PRICEHUB_LOG=warn "$BIN" serve --listen "127.0.0.1:$PORT" --database-url "$DB_URL" \
  --trusted-proxies 127.0.0.1/32 --rate-limit-per-minute 0 </dev/null >"$TMP/pricehub.log" 2>&1 &
PH_PID=$!
for i in $(seq 1 150); do
  curl -fsS -o /dev/null "$BASE/livez" 2>/dev/null && break
  kill -0 "$PH_PID" 2>/dev/null || { tail -n 30 "$TMP/pricehub.log" >&2; die "pricehub exited"; }
  [ "$i" -lt 150 ] || die "pricehub not ready after 30 s"
  sleep 0.2
done
curl -fsS -o /dev/null "$BASE/" || die "GET / failed"

# wrk summary → "requests seconds rps p50_ms p99_ms non2xx"
run_wrk() {
  local name=$1 path=$2 script=${3:-}
  local args=(-t"$THREADS" -c"$CONNS" --latency)
  [ -n "$script" ] && args+=(-s "$script")
  wrk "${args[@]}" -d"${WARMUP}s" "$BASE$path" >/dev/null
  wrk "${args[@]}" -d"${DURATION}s" "$BASE$path" >"$TMP/$name.txt"
  python3 - "$TMP/$name.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v, u): return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[u]
req, secs = re.search(r"(\d+) requests in ([\d.]+)(m?s)", t).groups()[:2]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(*re.search(r"50%\s+([\d.]+)(us|ms|s)", t).groups())
p99 = ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", t).groups())
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(req, secs, f"{rps:.0f}", f"{p50:.2f}", f"{p99:.2f}", bad.group(1) if bad else 0)
PY
}
visits_in_db() { psql -X -At -d "$DB_URL" -c 'SELECT COALESCE(SUM(visits), 0) FROM status_visitors'; }
visits_metric() { curl -fsS "$BASE/metrics" | awk '/^pricehub_status_visits_total/ {print $2}'; }

log "wrk /livez"
read -r L_REQ _ L_RPS L_P50 L_P99 L_BAD <<<"$(run_wrk livez /livez)"
log "wrk / (one visitor)"
before=$(visits_in_db)
read -r O_REQ _ O_RPS O_P50 O_P99 O_BAD <<<"$(run_wrk one /)"
log "wrk / (10,000 visitors)"
read -r M_REQ _ M_RPS M_P50 M_P99 M_BAD <<<"$(run_wrk many / "$ROOT/bench/visits.lua")"
sleep 1
DB_TOTAL=$(visits_in_db)
METRIC=$(visits_metric)
VISITORS=$(psql -X -At -d "$DB_URL" -c 'SELECT visitors FROM status_totals')
ROWS=$(psql -X -At -d "$DB_URL" -c 'SELECT COUNT(*) FROM status_visitors')
LOAD_AFTER=$(cut -d" " -f1-3 /proc/loadavg)

# wrk counts only answers it read; the warm-ups and the first curl also visited.
exact=$(python3 - "$DB_TOTAL" "${METRIC%.*}" "$VISITORS" "$ROWS" <<'PY'
import sys
db, metric, visitors, rows = map(int, sys.argv[1:])
print("yes" if db == metric and visitors == rows else "NO")
PY
)
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
verdict() { python3 -c "print('PASS' if $1 >= $TARGET else 'MISS')"; }
REPORT=$(cat <<EOF
# Status-page visits on PostgreSQL ($(date -u +%Y-%m-%dT%H:%MZ))

PostgreSQL $PG_VERSION (default durability), $CONNS connections, $THREADS wrk threads,
${DURATION} s per run after ${WARMUP} s warm-up. Load average before/after: $LOAD_BEFORE / $LOAD_AFTER
(a shared 2-core machine: other jobs were running).

| run | requests | req/s | p50 ms | p99 ms | non-2xx | vs /livez |
|---|---:|---:|---:|---:|---:|---:|
| GET /livez (floor) | $L_REQ | $L_RPS | $L_P50 | $L_P99 | $L_BAD | 1.00 |
| GET / one visitor | $O_REQ | $O_RPS | $O_P50 | $O_P99 | $O_BAD | $(ratio "$O_RPS" "$L_RPS") |
| GET / 10,000 visitors | $M_REQ | $M_RPS | $M_P50 | $M_P99 | $M_BAD | $(ratio "$M_RPS" "$L_RPS") |

Totals afterwards: visits stored $DB_TOTAL, server counter $METRIC, distinct visitors
$VISITORS (rows: $ROWS); exact: $exact. (wrk's counts exclude the warm-ups and the
at most $CONNS requests in flight when it stopped.)

Target >= $TARGET visits/s: one visitor $(verdict "$O_RPS"), many visitors $(verdict "$M_RPS").
EOF
)
echo "$REPORT"
mkdir -p "$RESULTS_DIR"
echo "$REPORT" >"$RESULTS_DIR/visits-$(date -u +%Y%m%dT%H%M%SZ).md"
[ "$exact" = yes ] || die "totals are not exact"
