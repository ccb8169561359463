#!/usr/bin/env bash
# Smoke test of a running pricehub deployment, through whatever fronts it (load balancer,
# ingress). Prints one PASS/FAIL line per check and exits 0 when every check passed, 1
# otherwise. Used after every deploy (compose, Ansible, the release workflow).
#   scripts/smoke.sh BASE_URL
# Read-only by default. Optional environment:
#   SMOKE_INGEST_TOKEN      bearer token: also POST /prices (3 rows on 2000-01-01 between
#                           the SMOKE_ORIG/SMOKE_DEST ports, idempotent key per run) and
#                           check the retry with the same key is a replay
#   SMOKE_ORIG, SMOKE_DEST  ports of the /rates check and the batch (CNGGZ, EETLL: the
#                           README query on the 2021 data)
#   SMOKE_RATES_EXPECTED    file with the exact expected body of the README /rates query
#                           (floats compared to 1e-9 relative)
#   SMOKE_ORDER=1           also place a 10 EUR order and check its price against the rate
#   SMOKE_FEED=1            require the live feed: instrument tick counts rise within 10 s
#   SMOKE_PROMETHEUS_URL    require every Prometheus target to be up
#   SMOKE_TIMEOUT           seconds per request (default 10)
# Needs curl and python3.
set -uo pipefail

BASE=${1:?usage: scripts/smoke.sh BASE_URL}
BASE=${BASE%/}
ORIG=${SMOKE_ORIG:-CNGGZ}
DEST=${SMOKE_DEST:-EETLL}
TIMEOUT=${SMOKE_TIMEOUT:-10}
TMP=$(mktemp -d /tmp/pricehub-smoke.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
FAILED=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILED=1; }

# req NAME METHOD PATH [curl args...]: body in $TMP/NAME, status in $STATUS, type in $CTYPE.
req() {
  local name=$1 method=$2 path=$3
  shift 3
  local out
  out=$(curl -sS -m "$TIMEOUT" -X "$method" -o "$TMP/$name" -w '%{http_code} %{content_type}' "$@" "$BASE$path" 2>"$TMP/$name.err") \
    || { STATUS=000; CTYPE=; echo "    curl: $(cat "$TMP/$name.err")"; return 0; }
  STATUS=${out%% *}
  CTYPE=${out#* }
}
# json FILE PYTHON-EXPR: evaluates EXPR with `d` = the parsed file; prints the result.
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }

req livez GET /livez
[ "$STATUS" = 200 ] && pass "GET /livez 200" || fail "GET /livez: $STATUS"

req readyz GET /readyz
if [ "$STATUS" = 200 ] && [ "$(json "$TMP/readyz" 'd["status"]')" = ready ]; then
  pass "GET /readyz ready ($(json "$TMP/readyz" '",".join(k+"="+v["status"] for k,v in d["checks"].items())'))"
else
  fail "GET /readyz: $STATUS $(head -c 300 "$TMP/readyz" 2>/dev/null)"
fi

req version GET /version
v=$(json "$TMP/version" 'd["version"]')
[ "$STATUS" = 200 ] && [ -n "$v" ] && pass "GET /version $v (commit $(json "$TMP/version" 'd.get("commit")'))" \
  || fail "GET /version: $STATUS"

req metrics GET /metrics
grep -q '^pricehub_build_info' "$TMP/metrics" 2>/dev/null && pass "GET /metrics has pricehub_build_info" \
  || fail "GET /metrics: $STATUS, no pricehub_build_info"

q="date_from=2021-01-01&date_to=2021-01-31&orig_code=$ORIG&dest_code=$DEST"
req rates GET "/rates?$q"
days=$(json "$TMP/rates" 'len(d["rates"])')
if [ "$STATUS" = 200 ] && [ "$days" = 31 ]; then
  pass "GET /rates?$q: 31 days"
else
  fail "GET /rates?$q: $STATUS $(head -c 300 "$TMP/rates" 2>/dev/null)"
fi
if [ -n "${SMOKE_RATES_EXPECTED:-}" ]; then
  if diff=$(python3 - "$SMOKE_RATES_EXPECTED" "$TMP/rates" <<'EOF'
import json, math, sys
want, got = (json.load(open(p)) for p in sys.argv[1:3])
def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b
if not same(want, got):
    print(json.dumps(got)[:400]); sys.exit(1)
EOF
  ); then
    pass "GET /rates README query equals the expected answer exactly"
  else
    fail "GET /rates README query differs: $diff"
  fi
fi

req bad GET "/rates?date_from=2021-02-30&date_to=2021-03-01&orig_code=$ORIG&dest_code=$DEST"
[ "$STATUS" = 400 ] && [[ $CTYPE == application/problem+json* ]] && pass "bad date: 400 problem+json" \
  || fail "bad date: $STATUS $CTYPE"

if [ -n "${SMOKE_INGEST_TOKEN:-}" ]; then
  key="smoke-$(date +%s)-$$"
  body="[{\"orig_code\":\"$ORIG\",\"dest_code\":\"$DEST\",\"day\":\"2000-01-01\",\"price\":1000},{\"orig_code\":\"$ORIG\",\"dest_code\":\"$DEST\",\"day\":\"2000-01-01\",\"price\":1001},{\"orig_code\":\"$ORIG\",\"dest_code\":\"$DEST\",\"day\":\"2000-01-01\",\"price\":1002}]"
  hdr=(-H "Authorization: Bearer $SMOKE_INGEST_TOKEN" -H 'Content-Type: application/json' -H "Idempotency-Key: $key")
  req ingest POST /prices "${hdr[@]}" --data "$body"
  id=$(json "$TMP/ingest" 'd["batch_id"]')
  if [ "$STATUS" = 201 ] && [ "$(json "$TMP/ingest" 'd["rows"]')" = 3 ]; then
    pass "POST /prices with the token: 201, 3 rows (batch $id)"
  else
    fail "POST /prices: $STATUS $(head -c 300 "$TMP/ingest")"
  fi
  req ingest2 POST /prices "${hdr[@]}" --data "$body"
  [ "$(json "$TMP/ingest2" 'd["batch_id"]')" = "$id" ] && [ -n "$id" ] \
    && pass "POST /prices retried with the same Idempotency-Key: same batch, stored once" \
    || fail "POST /prices retry: $STATUS $(head -c 300 "$TMP/ingest2")"
  req noauth POST /prices -H 'Content-Type: application/json' --data "$body"
  [ "$STATUS" = 401 ] && pass "POST /prices without the token: 401" || fail "POST /prices without the token: $STATUS"
fi

if [ "${SMOKE_ORDER:-}" = 1 ]; then
  req order POST /orders -H 'Content-Type: application/json' -H "Idempotency-Key: smoke-order-$(date +%s)-$$" \
    --data '{"currency":"EUR","amount":"10.00"}'
  if [ "$STATUS" = 201 ] && python3 - "$TMP/order" <<'EOF'
import json, sys
from decimal import Decimal, ROUND_CEILING
o = json.load(open(sys.argv[1]))
want = (Decimal(o["amount"]) / Decimal(o["rate"])).quantize(Decimal("0.00000001"), rounding=ROUND_CEILING)
sys.exit(0 if Decimal(o["btc_amount"]) == want and Decimal(o["rate"]) > 0 else 1)
EOF
  then
    pass "POST /orders 10 EUR: 201 at rate $(json "$TMP/order" 'd["rate"]'), btc_amount $(json "$TMP/order" 'd["btc_amount"]') = amount/rate rounded up"
  else
    fail "POST /orders: $STATUS $(head -c 300 "$TMP/order")"
  fi
fi

if [ "${SMOKE_FEED:-}" = 1 ]; then
  req inst1 GET /instruments
  t1=$(json "$TMP/inst1" 'sum(i["ticks"] for i in d["instruments"])')
  rising=
  for _ in $(seq 1 20); do
    sleep 0.5
    req inst2 GET /instruments
    t2=$(json "$TMP/inst2" 'sum(i["ticks"] for i in d["instruments"])')
    if [ -n "$t1" ] && [ -n "$t2" ] && [ "$t2" -gt "$t1" ]; then rising=1; break; fi
  done
  [ -n "$rising" ] && pass "GET /instruments: ticks rise ($t1 -> $t2 over $(json "$TMP/inst2" 'len(d["instruments"])') instruments)" \
    || fail "GET /instruments: ticks do not rise (${t1:-none} -> ${t2:-none})"
fi

if [ -n "${SMOKE_PROMETHEUS_URL:-}" ]; then
  if curl -sS -m "$TIMEOUT" -o "$TMP/targets" "${SMOKE_PROMETHEUS_URL%/}/api/v1/targets?state=active"; then
    summary=$(json "$TMP/targets" '" ".join(sorted(t["labels"]["job"]+"/"+t["labels"]["instance"]+"="+t["health"] for t in d["data"]["activeTargets"]))')
    down=$(json "$TMP/targets" 'sum(1 for t in d["data"]["activeTargets"] if t["health"] != "up")')
    [ -n "$summary" ] && [ "$down" = 0 ] && pass "Prometheus: every target up ($summary)" \
      || fail "Prometheus targets not all up: $summary"
  else
    fail "Prometheus at $SMOKE_PROMETHEUS_URL: unreachable"
  fi
fi

[ "$FAILED" = 0 ] && echo "smoke: all checks passed against $BASE" || echo "smoke: FAILED against $BASE"
exit "$FAILED"
