#!/usr/bin/env bash
# GET /rates benchmark, side by side with the original SQL under pgbench, in one run on
# one throw-away PostgreSQL (default durability settings).
#
#   bench/rates.sh
#
# What it does:
#   1. installs wrk/pgbench/PostgreSQL when missing (scripts/install-deps.sh --bench) and
#      builds pricehub in release mode (skipped when PRICEHUB_BIN is set);
#   2. starts a PostgreSQL server in a temporary directory (scripts/pg.sh) with two
#      databases loaded from the 2021 dump:
#        original  loaded the original way (psql -f rates-2021.sql): the original schema,
#                  no pricehub migrations, no index on prices;
#        pricehub  loaded with `pricehub import` (migrations, price_daily, triggers);
#   3. starts `pricehub serve` on a free port and checks that the README query returns 200
#      with 31 rates equal to what bench/rates-original.sql returns on `original`;
#   4. measures, after a warm-up:
#        pgbench -n -c 4  -j 2 -T D -f bench/rates-original.sql   (on `original`)
#        pgbench -n -c 16 -j 2 -T D -f bench/rates-original.sql   (on `original`)
#        wrk -t2 -c16 -dDs --latency  README query                 (pricehub)
#        wrk -t2 -c16 -dDs --latency  1-year query                 (pricehub)
#        wrk -t2 -c16 -dDs --latency  /livez                       (HTTP floor, no target)
#   5. prints a summary (req/s or tps, p99, ratios, CPU split, PASS/MISS against the
#      SPEC targets) and writes it to bench/results/rates-<UTC timestamp>.md.
# Everything it started is stopped and the temporary directory removed on exit,
# including on failure and Ctrl-C.
#
# Environment:
#   BENCH_DURATION=20         seconds per measured run
#   BENCH_WARMUP=5            seconds of warm-up per target before measuring
#   BENCH_CONNECTIONS=16      wrk connections (-c)
#   BENCH_THREADS=2           wrk threads (-t)
#   BENCH_PGBENCH_CLIENTS="4 16"   pgbench client counts (-c), one run each
#   BENCH_LIVEZ=1             also measure GET /livez (0 to skip)
#   BENCH_STRICT=0            1: exit with status 1 when a target is missed
#   BENCH_RESULTS_DIR=bench/results
#   PRICEHUB_BIN=             use this binary instead of building target/release/pricehub
#   RATES_DUMP=../shared/data/rates-2021.sql (relative to the repository root)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-20}
WARMUP=${BENCH_WARMUP:-5}
CONNS=${BENCH_CONNECTIONS:-16}
THREADS=${BENCH_THREADS:-2}
PGB_CLIENTS=${BENCH_PGBENCH_CLIENTS:-4 16}
LIVEZ=${BENCH_LIVEZ:-1}
STRICT=${BENCH_STRICT:-0}
RESULTS_DIR=${BENCH_RESULTS_DIR:-$ROOT/bench/results}
DUMP=${RATES_DUMP:-$ROOT/../shared/data/rates-2021.sql}
SQL=$ROOT/bench/rates-original.sql

README_Q='date_from=2021-01-01&date_to=2021-01-31&orig_code=CNGGZ&dest_code=EETLL'
YEAR_Q='date_from=2021-01-01&date_to=2021-12-31&orig_code=CNGGZ&dest_code=EETLL'
# Quoted from SPEC ("Performance targets"); NOT measured by this script.
FLASK_REF=491

# Targets from SPEC: README query >= 12,000 req/s with p99 < 5 ms at 16 connections;
# 1-year query >= 5,000 req/s.
README_MIN_RPS=12000
README_MAX_P99_MS=5
YEAR_MIN_RPS=5000

log() { printf '[rates-bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for v in DURATION WARMUP CONNS THREADS; do
  [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || die "$v must be a positive integer, got '${!v}'"
done
[ -f "$DUMP" ] || die "dump not found: $DUMP (set RATES_DUMP)"
[ -f "$SQL" ] || die "missing $SQL"

# --- cleanup -------------------------------------------------------------------------
TMP=""
PH_PID=""
PG_STARTED=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$PH_PID" ] && kill -0 "$PH_PID" 2>/dev/null; then
    log "stopping pricehub (pid $PH_PID)"
    kill -TERM "$PH_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$PH_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$PH_PID" 2>/dev/null || true
    wait "$PH_PID" 2>/dev/null || true
  fi
  if [ -n "$TMP" ]; then
    local pg_ok=1
    if [ "$PG_STARTED" = 1 ]; then
      log "stopping PostgreSQL"
      "$ROOT/scripts/pg.sh" stop "$TMP/pg" || pg_ok=0
    fi
    if [ "$pg_ok" = 1 ]; then
      rm -rf "$TMP"
    else
      log "PostgreSQL did not stop; leaving $TMP in place"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)
# --- tools ---------------------------------------------------------------------------
"$ROOT/scripts/install-deps.sh" --bench
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
pick() { if [ -n "$PGBIN" ] && [ -x "$PGBIN/$1" ]; then echo "$PGBIN/$1"; else command -v "$1" || true; fi; }
PSQL=$(pick psql)
PGBENCH=$(pick pgbench)
[ -n "$PSQL" ] || die "psql not found"
[ -n "$PGBENCH" ] || die "pgbench not found (it ships with the PostgreSQL client/server packages)"
for t in wrk curl python3 pgrep; do command -v "$t" >/dev/null || die "$t not found"; done

if [ -n "${PRICEHUB_BIN:-}" ]; then
  BIN=$PRICEHUB_BIN
  log "using PRICEHUB_BIN=$BIN (not building)"
else
  log "building pricehub (cargo build --release)"
  (cd "$ROOT" && cargo build --release)
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/pricehub
fi
[ -x "$BIN" ] || die "pricehub binary not found at $BIN"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- PostgreSQL and the two databases -----------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pricehub-rates-bench.XXXXXX")
chmod 755 "$TMP"
log "starting a throw-away PostgreSQL in $TMP/pg (default durability)"
PG_STARTED=1
ADMIN_URL=$(PG_FAST=0 "$ROOT/scripts/pg.sh" start "$TMP/pg")
BASE_URL=${ADMIN_URL%/postgres}
ORIG_URL=$BASE_URL/original
PH_URL=$BASE_URL/pricehub
"$PSQL" -q -X -v ON_ERROR_STOP=1 -d "$ADMIN_URL" -c 'CREATE DATABASE original' -c 'CREATE DATABASE pricehub'

log "loading $DUMP into 'original' the original way (psql -f; no migrations, no extra index)"
"$PSQL" -q -X -v ON_ERROR_STOP=1 -d "$ORIG_URL" -f "$DUMP" >/dev/null
"$PSQL" -q -X -v ON_ERROR_STOP=1 -d "$ORIG_URL" -c 'VACUUM ANALYZE'

log "loading $DUMP into 'pricehub' with pricehub import"
PRICEHUB_LOG=warn "$BIN" import --database-url "$PH_URL" "$DUMP" </dev/null >"$TMP/import.log" 2>&1 \
  || { cat "$TMP/import.log" >&2; die "pricehub import failed"; }
tail -n 1 "$TMP/import.log" >&2
"$PSQL" -q -X -v ON_ERROR_STOP=1 -d "$PH_URL" -c 'VACUUM ANALYZE'

orig_prices=$("$PSQL" -X -At -d "$ORIG_URL" -c 'SELECT count(*) FROM prices')
orig_indexes=$("$PSQL" -X -At -d "$ORIG_URL" -c "SELECT count(*) FROM pg_indexes WHERE tablename = 'prices'")
ph_prices=$("$PSQL" -X -At -d "$PH_URL" -c 'SELECT count(*) FROM prices')
log "original: $orig_prices prices, $orig_indexes indexes on prices; pricehub: $ph_prices prices"
[ "$orig_prices" = "$ph_prices" ] || die "the two databases differ ($orig_prices vs $ph_prices prices)"
PG_VERSION=$("$PSQL" -X -At -d "$ADMIN_URL" -c 'SHOW server_version')

# --- pricehub --------------------------------------------------------------------------
PH_PORT=$(free_port)
PH="http://127.0.0.1:$PH_PORT"
log "starting pricehub serve on $PH"
PRICEHUB_LOG=warn "$BIN" serve --listen "127.0.0.1:$PH_PORT" --database-url "$PH_URL" \
  </dev/null >"$TMP/pricehub.log" 2>&1 &
PH_PID=$!
for i in $(seq 1 150); do
  curl -fsS -o /dev/null "$PH/livez" 2>/dev/null && break
  kill -0 "$PH_PID" 2>/dev/null || { tail -n 30 "$TMP/pricehub.log" >&2; die "pricehub exited during start-up"; }
  [ "$i" -lt 150 ] || { tail -n 30 "$TMP/pricehub.log" >&2; die "pricehub not ready after 30 s"; }
  sleep 0.2
done

log "checking the README query (200, 31 rates, equal to the original SQL's rows)"
code=$(curl -sS -o "$TMP/readme.json" -w '%{http_code}' "$PH/rates?$README_Q")
[ "$code" = 200 ] || { cat "$TMP/readme.json" >&2; die "README query returned HTTP $code"; }
"$PSQL" -X -At -F '|' -v ON_ERROR_STOP=1 -d "$ORIG_URL" -f "$SQL" >"$TMP/original.txt"
python3 - "$TMP/readme.json" "$TMP/original.txt" <<'EOF' || die "the README query check failed"
import json, sys
rates = json.load(open(sys.argv[1]))["rates"]
rows = [l.split("|") for l in open(sys.argv[2]).read().splitlines() if l]
assert len(rates) == 31, f"expected 31 rates, got {len(rates)}"
assert len(rows) == 31, f"the original SQL returned {len(rows)} rows, expected 31"
for r, (day, count, price) in zip(rates, rows):
    assert r["day"] == day, (r, day)
    if price == "":
        assert r["price"] is None, (r, day, price)
    else:
        assert r["price"] is not None and abs(r["price"] - float(price)) <= 1e-9 * abs(float(price)), (r, price)
        assert int(r["count"]) == int(count), (r, count)
print("README query: 31 rates, equal to the original SQL", file=sys.stderr)
EOF
code=$(curl -sS -o "$TMP/year.json" -w '%{http_code}' "$PH/rates?$YEAR_Q")
[ "$code" = 200 ] || die "1-year query returned HTTP $code"
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["rates"]))' "$TMP/year.json")
[ "$n" = 365 ] || die "1-year query returned $n rates, expected 365"

# --- measurement helpers --------------------------------------------------------------
CLK=$(getconf CLK_TCK)
PM_PID=$(head -n 1 "$TMP/pg/data/postmaster.pid")
# utime+stime+cutime+cstime of a process, in clock ticks (0 when it is gone).
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# All of PostgreSQL: the postmaster (whose cutime/cstime hold its exited children) plus
# its live children.
pg_ticks() {
  local sum pid
  sum=$(ticks "$PM_PID")
  for pid in $(pgrep -P "$PM_PID" || true); do sum=$((sum + $(ticks "$pid"))); done
  echo "$sum"
}
busy_ticks() { awk '/^cpu /{ print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# CPU-seconds used by this shell's waited-for children (the load generators), from
# bash's `times`, which must run in the main shell (a $(...) subshell would report 0).
children_secs() {
  times >"$TMP/times.txt"   # line 2: "XmY.YYYs XmY.YYYs", children user and system
  awk 'NR == 2 { s = 0
    for (i = 1; i <= NF; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); s += a[1] * 60 + a[2] }
    printf "%.3f\n", s }' "$TMP/times.txt"
}
CPU_A=()
CPU=""
cpu_start() {
  children_secs >"$TMP/children0.txt"
  CPU_A=("$(busy_ticks)" "$(ticks "$PH_PID")" "$(pg_ticks)" "$(date +%s.%N)" "$(cat "$TMP/children0.txt")")
}
# Sets CPU to "pricehub postgres loadgen other" in cores used (CPU-seconds per second of
# wall time); "other" is everything else on the machine (should be about 0).
cpu_stop() {
  local b ph pg t c
  children_secs >"$TMP/children1.txt"
  b=$(busy_ticks); ph=$(ticks "$PH_PID"); pg=$(pg_ticks); t=$(date +%s.%N)
  c=$(cat "$TMP/children1.txt")
  CPU=$(awk -v b0="${CPU_A[0]}" -v b1="$b" -v h0="${CPU_A[1]}" -v h1="$ph" -v p0="${CPU_A[2]}" -v p1="$pg" \
      -v t0="${CPU_A[3]}" -v t1="$t" -v c0="${CPU_A[4]}" -v c1="$c" -v clk="$CLK" 'BEGIN {
    s = t1 - t0; if (s <= 0) s = 1; w = s * clk
    h = (h1 - h0) / w; p = (p1 - p0) / w; g = (c1 - c0) / s
    o = (b1 - b0) / w - h - p - g; if (o < 0) o = 0
    printf "%.2f %.2f %.2f %.2f\n", h, p, g, o }')
}
# wrk latency ("850.12us", "3.21ms", "1.02s", "1.00m") -> milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    else if (u != "ms") { print "nan"; exit }
    printf "%.3f\n", n }'
}
pause() { sleep 2; }

RESULTS=()   # "name|rate|p99_ms|unit|cpu_ph cpu_pg cpu_other|notes"

run_pgbench() {
  local clients=$1 name out cpu tps p99 failed
  name="pgbench original SQL, -c $clients -j 2"
  log "warm-up: pgbench -c $clients for ${WARMUP}s"
  "$PGBENCH" -n -c "$clients" -j 2 -T "$WARMUP" -f "$SQL" "$ORIG_URL" >/dev/null 2>&1
  pause
  log "measuring: pgbench -n -c $clients -j 2 -T $DURATION -f bench/rates-original.sql (original DB)"
  rm -f "$TMP"/pgb_"$clients".*
  cpu_start
  out=$("$PGBENCH" -n -c "$clients" -j 2 -T "$DURATION" -l --log-prefix="$TMP/pgb_$clients" -f "$SQL" "$ORIG_URL" 2>&1) \
    || { echo "$out" >&2; die "pgbench failed"; }
  cpu_stop; cpu=$CPU
  echo "$out" >"$TMP/pgbench_$clients.txt"
  tps=$(awk '/^tps = /{ print $3; exit }' <<<"$out")
  failed=$(awk '/^number of failed transactions:/{ print $5; exit }' <<<"$out")
  # Per-transaction log: the third column is the latency in microseconds.
  p99=$(cat "$TMP"/pgb_"$clients".* | awk '{ print $3 }' | sort -n |
        awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } i = int(NR * 0.99 + 0.999999); if (i > NR) i = NR; printf "%.3f\n", a[i] / 1000 }')
  [ -n "$tps" ] || { echo "$out" >&2; die "could not parse pgbench's tps"; }
  log "  tps $tps, p99 ${p99} ms, failed ${failed:-0}"
  RESULTS+=("$name|$tps|$p99|tps|$cpu|failed transactions: ${failed:-0}")
  PGB_TPS[$clients]=$tps
}

run_wrk() {
  local name=$1 url=$2 out cpu rps p99raw p99 non2xx sockerr notes top_file=${3:-} top_pid=""
  log "warm-up: wrk $name for ${WARMUP}s"
  wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null
  pause
  log "measuring: wrk -t$THREADS -c$CONNS -d${DURATION}s --latency $url"
  if [ -n "$top_file" ] && command -v top >/dev/null; then
    ( sleep $((DURATION / 2)); top -b -n 2 -d 2 -w 200 2>/dev/null | awk '/^top -/{ n++ } n == 2' | head -n 20 >"$top_file" ) &
    top_pid=$!
  fi
  cpu_start
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$url" 2>&1) || { echo "$out" >&2; die "wrk failed"; }
  cpu_stop; cpu=$CPU
  [ -n "$top_pid" ] && { wait "$top_pid" 2>/dev/null || true; }   # the top snapshot
  echo "$out" >"$TMP/wrk_$(tr -c 'a-zA-Z0-9\n' _ <<<"$name").txt"
  rps=$(awk '/^Requests\/sec:/{ print $2; exit }' <<<"$out")
  p99raw=$(awk '$1 == "99%" { print $2; exit }' <<<"$out")
  [ -n "$rps" ] && [ -n "$p99raw" ] || { echo "$out" >&2; die "could not parse wrk's output"; }
  p99=$(to_ms "$p99raw")
  non2xx=$(awk '/Non-2xx or 3xx responses:/{ print $NF; exit }' <<<"$out")
  sockerr=$(grep -m1 'Socket errors:' <<<"$out" | sed 's/^ *//' || true)
  notes="${non2xx:+non-2xx responses: $non2xx; }${sockerr}"
  kill -0 "$PH_PID" 2>/dev/null || { tail -n 30 "$TMP/pricehub.log" >&2; die "pricehub died during the run"; }
  log "  req/s $rps, p99 $p99raw${notes:+ ($notes)}"
  RESULTS+=("$name|$rps|$p99|req/s|$cpu|${notes:-0 errors}")
}

# --- the runs ------------------------------------------------------------------------------
declare -A PGB_TPS=()
for c in $PGB_CLIENTS; do run_pgbench "$c"; done
run_wrk "pricehub README query (31 days)" "$PH/rates?$README_Q" "$TMP/top_readme.txt"
run_wrk "pricehub 1-year query (365 days)" "$PH/rates?$YEAR_Q"
[ "$LIVEZ" = 1 ] && run_wrk "pricehub GET /livez (HTTP floor)" "$PH/livez"

# --- summary -------------------------------------------------------------------------------
STAMP_EPOCH=$(date +%s)
STAMP=$(date -u -d "@$STAMP_EPOCH" +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS_DIR"
OUT_MD="$RESULTS_DIR/rates-$STAMP.md"
CPU_MODEL=$(awk -F': ' '/^model name/{ print $2; exit }' /proc/cpuinfo)
COMMIT=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (working tree has uncommitted changes)" || true)
BIN_VERSION=$("$BIN" --version 2>/dev/null | head -n 1)
WRK_VERSION=$( (wrk --version 2>&1 || true) | awk 'NR == 1 { print $1, $2 }')

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }'; }
MISSED=0
verdict() {   # name rate p99 notes -> "target|PASS/MISS"
  local name=$1 rate=$2 p99=$3 notes=$4 ok
  case "$name" in
    *README*)
      ok=$(awk -v r="$rate" -v p="$p99" -v R="$README_MIN_RPS" -v P="$README_MAX_P99_MS" 'BEGIN { print (r >= R && p < P) ? 1 : 0 }')
      echo -n ">= $README_MIN_RPS req/s, p99 < $README_MAX_P99_MS ms|" ;;
    *1-year*)
      ok=$(awk -v r="$rate" -v R="$YEAR_MIN_RPS" 'BEGIN { print (r >= R) ? 1 : 0 }')
      echo -n ">= $YEAR_MIN_RPS req/s|" ;;
    *) echo "-|-"; return ;;
  esac
  case "$notes" in *non-2xx*|*Socket*) ok=0 ;; esac
  if [ "$ok" = 1 ]; then echo PASS; else echo MISS; MISSED=1; fi
}

FMT='| %-34s | %12s | %8s | %-14s | %-15s | %-20s | %-26s | %-6s | %-25s |\n'
table=$(
  printf "$FMT" "benchmark" "req/s or tps" "p99 (ms)" "x pgbench -c 4" "x pgbench -c 16" "x Flask 491 (quoted)" \
    "target" "result" "CPU ph / pg / load / other"
  printf "$FMT" "" "" "" "" "" "" "" "" "" | sed 's/[^|]/-/g'
  for r in "${RESULTS[@]}"; do
    IFS='|' read -r name rate p99 unit cpu notes <<<"$r"
    r4=$(ratio "$rate" "${PGB_TPS[4]:-0}"); r16=$(ratio "$rate" "${PGB_TPS[16]:-0}")
    rf=$(ratio "$rate" "$FLASK_REF")
    [ "$unit" = tps ] && rf="-"
    v=$(verdict "$name" "$rate" "$p99" "$notes")
    printf "$FMT" "$name" "$(printf '%.0f %s' "$rate" "$unit")" "$p99" "$r4" "$r16" "$rf" "${v%%|*}" "${v##*|}" "${cpu// / / }"
  done
)
# verdict() ran in a subshell above; compute MISSED here.
for r in "${RESULTS[@]}"; do
  IFS='|' read -r name rate p99 unit cpu notes <<<"$r"
  [ "$(verdict "$name" "$rate" "$p99" "$notes" | cut -d'|' -f2)" = MISS ] && MISSED=1
done
max_other=$(for r in "${RESULTS[@]}"; do IFS='|' read -r _ _ _ _ cpu _ <<<"$r"; echo "${cpu##* }"; done | sort -n | tail -n 1)
BUSY_WARNING=""
if awk -v o="$max_other" 'BEGIN { exit !(o > 0.15) }'; then
  BUSY_WARNING="the machine was not idle: other processes used up to $max_other cores during a run (see the last CPU column); numbers are pessimistic"
fi
notes_md=$(for r in "${RESULTS[@]}"; do IFS='|' read -r name rate p99 unit cpu notes <<<"$r"; echo "- $name: $notes"; done)

{
  echo "# GET /rates benchmark — $(date -u -d "@$STAMP_EPOCH" "+%Y-%m-%d %H:%M:%S UTC")"
  echo
  echo "- command: \`bench/rates.sh\` (BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_CONNECTIONS=$CONNS BENCH_THREADS=$THREADS BENCH_PGBENCH_CLIENTS=\"$PGB_CLIENTS\")"
  echo "- machine: $(nproc) CPUs, $CPU_MODEL; wrk, pricehub and PostgreSQL share them; load average before the run: $LOAD_BEFORE"
  echo "- pricehub: $BIN_VERSION; repository at $COMMIT$DIRTY"
  echo "- PostgreSQL $PG_VERSION (throw-away server, default durability), $WRK_VERSION, $("$PGBENCH" --version)"
  echo "- data: $(basename "$DUMP") ($orig_prices prices) loaded twice into one server:"
  echo "  \`original\` with \`psql -f\` (original schema, $orig_indexes indexes on prices) for pgbench;"
  echo "  \`pricehub\` with \`pricehub import\` (migrations, price_daily) for pricehub"
  echo "- pgbench: \`pgbench -n -c N -j 2 -T $DURATION -f bench/rates-original.sql\` on \`original\`"
  echo "  (the original app's SQL, reconstructed, for the README parameters); p99 from its per-transaction log"
  echo "- wrk: \`wrk -t$THREADS -c$CONNS -d${DURATION}s --latency\`"
  echo "  - README query: \`/rates?$README_Q\`"
  echo "  - 1-year query: \`/rates?$YEAR_Q\`"
  echo "- \"x Flask 491 (quoted)\": ratio to the original Flask app under gunicorn (4 workers), 491 req/s,"
  echo "  a figure quoted from SPEC — NOT measured by this run"
  echo "- CPU ph / pg / load / other: cores used during the run (CPU-seconds per second) by pricehub,"
  echo "  by PostgreSQL (all its processes), by the load generator (wrk or pgbench) and by anything"
  echo "  else on the machine (about 0 on an idle machine), from /proc and bash's \`times\`"
  [ -n "$BUSY_WARNING" ] && echo "- **$BUSY_WARNING**"
  echo
  echo "$table"
  echo
  echo "Errors reported by the load generators:"
  echo
  echo "$notes_md"
  if [ -s "$TMP/top_readme.txt" ]; then
    echo
    echo "\`top\` snapshot in the middle of the README query run:"
    echo
    echo '```'
    cat "$TMP/top_readme.txt"
    echo '```'
  fi
} >"$OUT_MD"

echo
echo "$table"
echo
echo "Ratios to 'Flask 491' use the SPEC's quoted figure for the original app (not measured here)."
[ -n "$BUSY_WARNING" ] && log "WARNING: $BUSY_WARNING"
echo "Results written to $OUT_MD"
if [ "$MISSED" = 1 ]; then
  log "at least one target was MISSED"
  [ "$STRICT" = 1 ] && exit 1
fi
exit 0
