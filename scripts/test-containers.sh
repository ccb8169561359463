#!/usr/bin/env bash
# The container test (stage `containers` of scripts/test.sh): builds the real Dockerfile
# on local base images, checks the image, brings the whole compose stack up, smoke-tests
# it through the load balancer, runs the fault drills, and runs two isolated stacks side
# by side. Prints PASS/FAIL lines and its own timings; exits non-zero on any failure.
#   scripts/test-containers.sh
# Environment:
#   CI=true               a missing Docker engine is a failure (otherwise: loud skip)
#   CT_PREFIX             prefix of every image, container, volume and project made here
#                         (default pricehub-ct); only those are removed at the end
#   CT_CARGO_PROFILE      Cargo profile of the image (default release)
#   CT_KEEP=1             leave the stacks running (for debugging)
#   CT_IMAGE              test this existing image instead of building one
#   COMPOSE               compose command (default: `docker compose` if present, else
#                         docker-compose)
#   PRICEHUB_TEST_DATA    reference data (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
T_START=$SECONDS
PREFIX=${CT_PREFIX:-pricehub-ct}
DOCKER=${DOCKER:-/usr/bin/docker}
DATA=${PRICEHUB_TEST_DATA:-../shared/data}
DATA=$(cd "$DATA" 2>/dev/null && pwd || echo "$DATA")
IMAGE=$PREFIX-pricehub:test
BUILD_NUMBER=42
COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
TMP=$(mktemp -d /tmp/pricehub-ct.XXXXXX)
FAILURES=0
TIMES=()

say() { echo "containers: $*"; }
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILURES=$((FAILURES + 1)); }
die() { echo "FAIL $*"; exit 1; }
step() { # NAME: closes the previous step's timer and starts a new one
  if [ -n "${STEP:-}" ]; then TIMES+=("$(printf '%-28s %4d s' "$STEP" $((SECONDS - STEP_T0)))"); fi
  STEP=$1 STEP_T0=$SECONDS
  [ -n "$STEP" ] && say "---- $STEP"
  return 0
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PROJECTS=()
cleanup() {
  local rc=$?
  step ""
  if [ "${CT_KEEP:-}" != 1 ]; then
    for p in "${PROJECTS[@]}"; do
      project_env "$p"
      $COMPOSE -p "$p" --profile grafana down -v --remove-orphans >/dev/null 2>&1 || true
    done
    "$DOCKER" rm -f -v "$PREFIX-solo" "$PREFIX-ro" >/dev/null 2>&1 || true
  fi
  rm -rf "$TMP"
  echo "---- container test times ----"
  printf '%s\n' "${TIMES[@]}"
  printf '%-28s %4d s\n' total $((SECONDS - T_START))
  if [ "$rc" = 0 ] && [ "$FAILURES" -gt 0 ]; then rc=1; fi
  [ "$rc" = 0 ] && say "all checks passed" || say "FAILED ($FAILURES failed checks, exit $rc)"
  exit "$rc"
}

# ---- engine and local base images
step setup
if ! scripts/docker-setup.sh; then
  if [ "${CI:-}" = true ]; then die "no Docker engine (CI=true: a missing engine is a failure)"; fi
  echo "SKIP containers: no Docker engine could be set up (not CI, so not a failure)" >&2
  exit 0
fi
set -a
# shellcheck source=../deploy/images/local.env
. deploy/images/local.env
set +a
if [ -z "${COMPOSE:-}" ]; then
  if "$DOCKER" compose version >/dev/null 2>&1; then COMPOSE="$DOCKER compose"; else COMPOSE=docker-compose; fi
fi
say "compose: $($COMPOSE version 2>/dev/null | head -1)"
trap cleanup EXIT
[ -f "$DATA/rates-2021.sql" ] || die "reference data missing: $DATA/rates-2021.sql"

# ---- the image
step image-build
s=$SECONDS
if [ -n "${CT_IMAGE:-}" ]; then
  IMAGE=$CT_IMAGE
  say "using the existing image $IMAGE (CT_IMAGE); not building"
else
DOCKER_BUILDKIT=1 "$DOCKER" build --progress=plain \
  --build-arg RUST_IMAGE="$RUST_IMAGE" --build-arg RUNTIME_IMAGE="$RUNTIME_IMAGE" \
  --build-arg CARGO_PROFILE="${CT_CARGO_PROFILE:-release}" \
  --build-arg BUILD_NUMBER=$BUILD_NUMBER --build-arg GIT_COMMIT="$COMMIT" \
  --build-arg VERSION="$(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)" \
  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --build-arg SOURCE_URL="file://$ROOT" \
  -t "$IMAGE" . >"$TMP/build.log" 2>&1 || { tail -40 "$TMP/build.log"; die "docker build"; }
pass "docker build in $((SECONDS - s)) s ($IMAGE)"
fi

step image-checks
c=$("$DOCKER" create "$IMAGE")
"$DOCKER" cp "$c:/usr/local/bin/pricehub" "$TMP/pricehub" >/dev/null
"$DOCKER" rm "$c" >/dev/null
bin=$(stat -c %s "$TMP/pricehub")
img=$("$DOCKER" image inspect --format '{{.Size}}' "$IMAGE")
over=$(((img - bin) / 1000000))
msg="image $((img / 1000000)) MB, binary $((bin / 1000000)) MB: $over MB on top of the binary (goal <= 30)"
[ "$over" -le 30 ] && pass "$msg" || fail "$msg"

v=$("$DOCKER" run --rm "$IMAGE" --version)
[[ $v == *"+build.$BUILD_NUMBER"* ]] && pass "pricehub --version: $v" || fail "pricehub --version: $v"

user=$("$DOCKER" image inspect --format '{{.Config.User}}' "$IMAGE")
[ "$user" = 10001:10001 ] && pass "image user $user" || fail "image user: '$user'"
for l in title version revision created source licenses; do
  val=$("$DOCKER" image inspect --format "{{ index .Config.Labels \"org.opencontainers.image.$l\" }}" "$IMAGE")
  case $l in
    version) want="0.1.0+build.$BUILD_NUMBER" ;;
    revision) want=$COMMIT ;;
    *) want= ;;
  esac
  if [ -n "$val" ] && [ "$val" != unknown ] && { [ -z "$want" ] || [ "$val" = "$want" ]; }; then
    pass "label org.opencontainers.image.$l=$val"
  else
    fail "label $l: '$val'"
  fi
done
hc=$("$DOCKER" image inspect --format '{{json .Config.Healthcheck.Test}} {{.Config.StopSignal}} {{json .Config.ExposedPorts}} {{json .Config.Volumes}}' "$IMAGE")
[[ $hc == '["CMD","/usr/local/bin/pricehub","healthcheck"] SIGTERM {"3000/tcp":{}} {"/data":{}}' ]] \
  && pass "exec-form HEALTHCHECK, STOPSIGNAL, EXPOSE, VOLUME: $hc" || fail "image config: $hc"

# wait_healthy CONTAINER SECONDS
wait_healthy() {
  local s
  for _ in $(seq 1 $(($2 * 2))); do
    s=$("$DOCKER" inspect --format '{{.State.Health.Status}}' "$1" 2>/dev/null || echo gone)
    [ "$s" = healthy ] && return 0
    sleep 0.5
  done
  echo "    $1 is $s; last health checks:" >&2
  "$DOCKER" inspect --format '{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{end}}' "$1" >&2 || true
  "$DOCKER" logs --tail 20 "$1" >&2 || true
  return 1
}

# `docker run IMAGE` alone, with a published port and a read-only root file system.
s=$SECONDS
"$DOCKER" run -d --name "$PREFIX-solo" --read-only -p 127.0.0.1::3000 "$IMAGE" >/dev/null
if wait_healthy "$PREFIX-solo" 90; then
  pass "docker run IMAGE (read-only root fs): healthy in $((SECONDS - s)) s"
else
  fail "docker run IMAGE did not turn healthy"
fi
port=$("$DOCKER" port "$PREFIX-solo" 3000/tcp | head -1 | sed 's/.*://')
from=$(date -u -d '6 days ago' +%F) to=$(date -u +%F)
st=$(curl -s -o "$TMP/solo.json" -w '%{http_code}' "http://127.0.0.1:$port/rates?date_from=$from&date_to=$to&orig_code=china_main&dest_code=northern_europe")
days=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["rates"]))' "$TMP/solo.json" 2>/dev/null || echo 0)
[ "$st" = 200 ] && [ "$days" = 7 ] && pass "embedded default serves demo /rates on 0.0.0.0:3000 (published $port)" \
  || fail "embedded default /rates: $st $(head -c 200 "$TMP/solo.json")"
ver=$(curl -s "http://127.0.0.1:$port/version")
[[ $ver == *"\"build\":$BUILD_NUMBER"* || $ver == *"\"build\":\"$BUILD_NUMBER\""* ]] && pass "BUILD_NUMBER reaches /version: $ver" || fail "/version: $ver"
pid=$("$DOCKER" inspect --format '{{.State.Pid}}' "$PREFIX-solo")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[ "$uid" = 10001 ] && pass "PID 1 of the container runs as uid $uid (/proc/$pid/status)" || fail "PID 1 uid: $uid"
"$DOCKER" exec "$PREFIX-solo" /bin/sh -c true >/dev/null 2>&1 && fail "the runtime image has a shell" || pass "no shell in the runtime image"
"$DOCKER" rm -f -v "$PREFIX-solo" >/dev/null

# ---- the stack
# project_env NAME: the variables of stack NAME (ports fixed per project once chosen).
declare -A HTTP_PORTS PROM_PORTS
project_env() {
  export COMPOSE_PROJECT_NAME=$1 PRICEHUB_IMAGE=$IMAGE
  export PRICEHUB_HTTP_PORT=${HTTP_PORTS[$1]} PRICEHUB_PROMETHEUS_PORT=${PROM_PORTS[$1]}
  export PRICEHUB_COLLECTOR_MAX_BUFFERED=100 PRICEHUB_DRAIN_DELAY=${PRICEHUB_DRAIN_DELAY:-3}
}
dc() { $COMPOSE -p "$COMPOSE_PROJECT_NAME" "$@"; }
# The container of a service of the current project (running or not), straight from the
# engine: much quicker than `compose ps -q` in polling loops.
cid() { "$DOCKER" ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" --filter "label=com.docker.compose.service=$1" | head -1; }
# up_stack NAME: up -d, then wait until every service is healthy; prints the seconds.
up_stack() {
  if [ -z "${HTTP_PORTS[$1]:-}" ]; then
    HTTP_PORTS[$1]=$(free_port)
    PROM_PORTS[$1]=$(free_port)
    PROJECTS+=("$1")
  fi
  project_env "$1"
  local s=$SECONDS
  dc up -d >"$TMP/up-$1.log" 2>&1 || { cat "$TMP/up-$1.log"; return 1; }
  # One `docker inspect` of the project's containers per poll: healthy, or exited 0 (migrate).
  local states=""
  for _ in $(seq 1 480); do
    states=$("$DOCKER" inspect --format '{{index .Config.Labels "com.docker.compose.service"}}={{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}:{{.State.ExitCode}}{{end}}' \
      $("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$1") | sort | tr '\n' ' ')
    [ "$(echo "$states" | tr ' ' '\n' | grep -c -E '=(healthy|exited:0)$')" = 9 ] && break
    sleep 0.5
  done
  [ "$(echo "$states" | tr ' ' '\n' | grep -c -E '=(healthy|exited:0)$')" = 9 ] || { echo "    not all healthy: $states" >&2; return 1; }
  [ "$("$DOCKER" inspect --format '{{.State.ExitCode}}' "$(cid migrate)")" = 0 ] || { echo "    migrate failed" >&2; return 1; }
  UP_SECONDS=$((SECONDS - s))
}
psql_a() { "$DOCKER" exec "$(cid postgres)" psql -U pricehub -d pricehub -Atc "$1"; }
metric() { # URL NAME: sum of a metric's samples
  curl -s "$1" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 {s += $2} END {printf "%d\n", s}'
}

step stack-up
A=$PREFIX-a
if up_stack "$A"; then pass "stack $A: every service healthy $UP_SECONDS s after 'up -d' (images built)"; else die "stack $A did not come up"; fi
project_env "$A"
LB=http://127.0.0.1:$PRICEHUB_HTTP_PORT
PROM=http://127.0.0.1:$PRICEHUB_PROMETHEUS_PORT

step import
s=$SECONDS
dc run --rm -T -v "$DATA/rates-2021.sql:/import/rates-2021.sql:ro" migrate import /import/rates-2021.sql >"$TMP/import.log" 2>&1 \
  && pass "docker compose run migrate import rates-2021.sql in $((SECONDS - s)) s: $(grep -o 'imported.*' "$TMP/import.log" | tail -1)" \
  || { cat "$TMP/import.log"; fail "import of the 2021 dump"; }

step smoke
python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
items = v["vectors"] if "vectors" in v else next(x for x in v.values() if isinstance(x, list))
q = "date_from=2021-01-01&date_to=2021-01-31&orig_code=CNGGZ&dest_code=EETLL"
json.dump(next(i["original"]["body"] for i in items if i["query"] == q), open(sys.argv[2], "w"))
' "$DATA/rates-vectors.json" "$TMP/readme-rates.json"
# Prometheus scrapes every 5 s: wait until every target has been scraped up once.
for _ in $(seq 1 60); do
  curl -s "$PROM/api/v1/targets" | python3 -c 'import json,sys; t=json.load(sys.stdin)["data"]["activeTargets"]; sys.exit(0 if t and all(x["health"]=="up" for x in t) else 1)' 2>/dev/null && break
  sleep 1
done
if SMOKE_INGEST_TOKEN=$(cat deploy/secrets/dev/ingest_token) SMOKE_RATES_EXPECTED=$TMP/readme-rates.json \
  SMOKE_ORDER=1 SMOKE_FEED=1 SMOKE_PROMETHEUS_URL=$PROM scripts/smoke.sh "$LB"; then
  pass "scripts/smoke.sh through the load balancer"
else
  fail "scripts/smoke.sh through the load balancer"
fi

# ---- drills
# Counters of the collector (its side port is not published: read from inside the
# network, through the nginx container, which has curl).
coll() { "$DOCKER" exec "$(cid lb)" curl -s http://collector:5557/metrics | awk -v n="$1" '$1 == n {s += $2} END {printf "%d\n", s}'; }
current_run() { psql_a "SELECT run_id FROM trades ORDER BY id DESC LIMIT 1"; }
# Exactness of storage: no trade stored twice, and within every collector run the stored
# receipts are 0..n-1 with no hole.
check_exact() { # LABEL
  local r dupes holes runs total
  r=$(psql_a "SELECT count(*) - count(DISTINCT (run_id, seq)), (SELECT count(*) FROM (SELECT run_id FROM trades GROUP BY run_id HAVING count(*) <> max(seq) + 1 OR min(seq) <> 0) h), count(DISTINCT run_id), count(*) FROM trades")
  IFS='|' read -r dupes holes runs total <<<"$r"
  if [ "$dupes" = 0 ] && [ "$holes" = 0 ]; then
    pass "$1: $total trades from $runs collector runs, 0 duplicates, 0 holes"
  else
    fail "$1: $dupes duplicates, $holes runs with holes ($total trades)"
  fi
}
# Pause the provider and wait until the collector stored everything it received in its
# current run: then received == stored, exactly.
settle() { # LABEL
  "$DOCKER" pause "$(cid provider)" >/dev/null
  local run recv=0 stored=-1
  for _ in $(seq 1 60); do
    sleep 1
    run=$(current_run)
    recv=$(coll pricehub_feed_trades_received_total)
    stored=$(psql_a "SELECT count(*) FROM trades WHERE run_id = $run")
    [ "$recv" = "$stored" ] && [ "$recv" -gt 0 ] && break
  done
  if [ "$recv" = "$stored" ] && [ "$recv" -gt 0 ]; then
    pass "$1: the collector received $recv trades in its current run and stored exactly $stored"
  else
    fail "$1: received $recv, stored $stored"
  fi
  "$DOCKER" unpause "$(cid provider)" >/dev/null
}

step drill-kill-collector
ctr=$(cid collector)
restarts=$("$DOCKER" inspect --format '{{.RestartCount}}' "$ctr")
init_pid=$("$DOCKER" inspect --format '{{.State.Pid}}' "$ctr")
app_pid=$(awk '{print $1}' "/proc/$init_pid/task/$init_pid/children")
run_before=$(current_run)
sleep 2
# A crash, not `docker kill` (which counts as a manual stop): SIGKILL to the process
# under the container's init, while it holds a live feed connection.
[ -n "$app_pid" ] && kill -9 "$app_pid"
say "kill -9 $app_pid (pricehub collector, run $run_before) mid-stream"
sleep 2
if wait_healthy "$ctr" 60 && [ "$("$DOCKER" inspect --format '{{.RestartCount}}' "$ctr")" -gt "$restarts" ]; then
  pass "collector restarted by its restart policy and is ready again"
else
  fail "collector did not come back after kill -9"
fi
sleep 3
[ "$(current_run)" != "$run_before" ] && pass "a new collector run is storing trades" || fail "no trades from a new run"
settle "after kill -9"
check_exact "after kill -9"

step drill-postgres-down
s=$SECONDS
dc stop -t 10 postgres >/dev/null 2>&1
st=$(curl -s -o "$TMP/orders503.json" -w '%{http_code} %{content_type}' "$LB/orders?limit=1")
if [[ $st == "503 application/problem+json"* ]]; then
  pass "PostgreSQL down: GET /orders answers $st $(head -c 160 "$TMP/orders503.json")"
else
  fail "PostgreSQL down: GET /orders answered $st $(head -c 160 "$TMP/orders503.json")"
fi
st=$(curl -s -o /dev/null -w '%{http_code}' "$LB/readyz")
[ "$st" = 503 ] && pass "PostgreSQL down: /readyz through the load balancer is 503" || fail "PostgreSQL down: /readyz $st"
spooled=0
for _ in $(seq 1 20); do
  spooled=$(coll pricehub_feed_spool_bytes)
  [ "$spooled" -gt 0 ] && break
  sleep 0.5
done
[ "$spooled" -gt 0 ] && pass "PostgreSQL down: the collector spools ($spooled bytes on disk)" || fail "the collector did not spool"
st=$("$DOCKER" exec "$(cid lb)" curl -s -o /dev/null -w '%{http_code}' http://collector:5557/readyz)
[ "$st" = 503 ] && pass "PostgreSQL down: collector /readyz 503" || fail "PostgreSQL down: collector /readyz $st"
left=$((10 - (SECONDS - s)))
[ "$left" -gt 0 ] && sleep "$left"
dc start postgres >/dev/null 2>&1
wait_healthy "$(cid postgres)" 60 || fail "PostgreSQL did not come back"
for _ in $(seq 1 60); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$LB/readyz")" = 200 ] && [ "$(coll pricehub_feed_spool_bytes)" = 0 ] && break
  sleep 0.5
done
st=$(curl -s -o /dev/null -w '%{http_code}' "$LB/readyz")
[ "$st" = 200 ] && pass "PostgreSQL back: /readyz 200 $((SECONDS - s)) s after the stop" || fail "API not ready after PostgreSQL came back: $st"
[ "$(coll pricehub_feed_spool_bytes)" = 0 ] && pass "PostgreSQL back: the spool was replayed (0 bytes left)" || fail "spool not replayed"
settle "after the PostgreSQL outage"
check_exact "after the PostgreSQL outage"

step drill-rolling-restart
cat >"$TMP/load.py" <<'PY'
import http.client, os, sys, threading, time
host, port, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
paths = ["/rates?date_from=2021-01-01&date_to=2021-01-31&orig_code=CNGGZ&dest_code=EETLL", "/livez", "/instruments"]
ok = [0]
bad = []
lock = threading.Lock()
def worker():
    conn = None
    i = 0
    while not os.path.exists(stop):
        i += 1
        path = paths[i % len(paths)]
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            with lock:
                if r.status == 200:
                    ok[0] += 1
                else:
                    bad.append(f"{r.status} {path}")
        except Exception as e:
            with lock:
                bad.append(repr(e))
            conn = None
        time.sleep(0.01)
ts = [threading.Thread(target=worker) for _ in range(4)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(ok[0], len(bad), "; ".join(bad[:5]))
PY
python3 "$TMP/load.py" 127.0.0.1 "$PRICEHUB_HTTP_PORT" "$TMP/stop-load" >"$TMP/load.out" 2>&1 &
load_pid=$!
sleep 2
for api in api-1 api-2; do
  s=$SECONDS
  dc restart -t 30 "$api" >/dev/null 2>&1
  if wait_healthy "$(cid $api)" 60; then say "$api restarted and healthy in $((SECONDS - s)) s"; else fail "$api not healthy after restart"; fi
done
sleep 2
touch "$TMP/stop-load"
wait "$load_pid" || true
read -r ok bad rest <"$TMP/load.out" || true
if [ "${bad:-1}" = 0 ] && [ "${ok:-0}" -gt 100 ]; then
  pass "rolling restart of api-1 then api-2 under load: $ok requests, 0 failed"
else
  fail "rolling restart: ${ok:-?} ok, ${bad:-?} failed: ${rest:-}"
fi

step drill-down-up
counts() { psql_a "SELECT (SELECT count(*) FROM prices) || ' ' || (SELECT count(*) FROM orders) || ' ' || (SELECT count(*) FROM trades)"; }
before=$(counts)
read -r prices0 orders0 trades0 <<<"$before"
dc down >/dev/null 2>&1
if up_stack "$A"; then pass "down then up: every service healthy again in $UP_SECONDS s"; else fail "stack did not come back after down/up"; fi
after=$(counts)
read -r prices1 orders1 trades1 <<<"$after"
if [ "$prices1" = "$prices0" ] && [ "$orders1" = "$orders0" ] && [ "$trades1" -ge "$trades0" ]; then
  pass "down then up: data kept ($prices1 prices, $orders1 orders, $trades0 -> $trades1 trades)"
else
  fail "down then up: before $before, after $after"
fi
if SMOKE_RATES_EXPECTED=$TMP/readme-rates.json scripts/smoke.sh "$LB" >"$TMP/smoke-after.log" 2>&1; then
  pass "smoke after down/up (README query still exact)"
else
  cat "$TMP/smoke-after.log"
  fail "smoke after down/up"
fi

step side-by-side
B=$PREFIX-b
if up_stack "$B"; then pass "second stack $B up next to $A in $UP_SECONDS s"; else fail "second stack $B did not come up"; fi
project_env "$B"
LB_B=http://127.0.0.1:$PRICEHUB_HTTP_PORT
orders_of() { curl -s "$1/orders?limit=100" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["orders"]))'; }
n_b=$(orders_of "$LB_B")
if SMOKE_FEED=1 scripts/smoke.sh "$LB_B" >"$TMP/smoke-b.log" 2>&1 || ! grep -q -E '^FAIL (GET /livez|GET /readyz|GET /version|GET /metrics|GET /instruments)' "$TMP/smoke-b.log"; then
  pass "stack $B serves and collects its own feed ($(grep -c ^PASS "$TMP/smoke-b.log") smoke checks pass; its /rates has no data: nothing imported there)"
else
  cat "$TMP/smoke-b.log"
  fail "stack $B smoke"
fi
project_env "$A"
n_a=$(orders_of "$LB")
[ "$n_b" = 0 ] && [ "$n_a" -gt 0 ] && pass "isolated: $A has $n_a orders, $B has none" || fail "isolation: $A $n_a orders, $B $n_b"
vols=$("$DOCKER" volume ls -q | grep -c -E "^($A|$B)_pgdata$" || true)
[ "$vols" = 2 ] && pass "each stack has its own volumes (${A}_pgdata, ${B}_pgdata)" || fail "volumes: $vols"
if scripts/smoke.sh "$LB" >"$TMP/smoke-a2.log" 2>&1; then pass "stack $A still passes its smoke test while $B runs"; else cat "$TMP/smoke-a2.log"; fail "stack $A smoke while $B runs"; fi
