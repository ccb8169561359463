#!/usr/bin/env bash
# The observability kit checked for real (stage `observability` of scripts/test.sh):
#   1. the Grafana dashboards are valid dashboards; every alert has a firing promtool test
#      and a runbook section (deploy/prometheus/check.py static);
#   2. promtool check rules and promtool test rules;
#   3. a real Prometheus, loaded with the rules, scrapes a real `pricehub serve`,
#      `provider` and `collector` on a throw-away PostgreSQL under light load (rates
#      queries, a sync and an async batch, orders); every panel query, recording rule and
#      alert expression must parse and return at least one series, and every metric they
#      name must exist (deploy/prometheus/check.py live);
#   4. the screenshot script renders every dashboard from the same Prometheus.
#   scripts/test-observability.sh                 # the checks above
#   scripts/test-observability.sh --screenshots   # also writes the PNGs to docs/img/
# With CI=true a missing tool is a failure. Needs the built binary (cargo build).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
T0=$SECONDS
step() { echo "--- $1 ($((SECONDS - T0)) s)"; }

for tool in promtool prometheus python3; do
  command -v "$tool" >/dev/null 2>&1 || scripts/install-deps.sh
  command -v "$tool" >/dev/null 2>&1 || { echo "FAIL $tool is missing (scripts/install-deps.sh)"; exit 1; }
done

# Python with PyYAML (the checker) and matplotlib (the screenshots), in a cached venv.
VENV=${PRICEHUB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pricehub}/obs-venv
if ! "$VENV/bin/python" -c 'import yaml, matplotlib' >/dev/null 2>&1; then
  step "creating $VENV (pyyaml, matplotlib from PyPI)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q pyyaml matplotlib
fi
PY="$VENV/bin/python"

BIN=${PRICEHUB_BIN:-$ROOT/target/debug/pricehub}
if [ ! -x "$BIN" ]; then
  step "building pricehub"
  cargo build --quiet --bin pricehub
fi

step "static checks"
"$PY" deploy/prometheus/check.py static

step "promtool check rules / test rules"
promtool check rules deploy/prometheus/rules/*.yml
(cd deploy/prometheus/tests && promtool test rules ./*.yml)
echo "PASS promtool"

WORK=$(mktemp -d /tmp/pricehub-obs.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/pg.sh stop "$WORK/pg" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "FAIL $1 never answered"; tail -n 20 "$WORK"/*.log; exit 1
}

step "starting PostgreSQL, pricehub serve, provider, collector"
PG_ADMIN=$(PG_FAST=1 scripts/pg.sh start "$WORK/pg")
DB_URL=${PG_ADMIN%/postgres}/postgres
API_PORT=$(free_port); FEED_PORT=$(free_port); PROV_HTTP=$(free_port); COLL_HTTP=$(free_port); PROM_PORT=$(free_port)
TOKEN=obs-stage-token
export PRICEHUB_LOG=warn PRICEHUB_LOG_FORMAT=json
"$BIN" migrate --database-url "$DB_URL" >"$WORK/migrate.log" 2>&1
# Ports and a lane to ingest on: two ports and a region, inserted before the API loads its catalogue (the real dump stays in ../shared/data).
psql -q "$DB_URL" -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO regions (slug, name, parent_slug) VALUES ('obs_region', 'Obs region', NULL) ON CONFLICT DO NOTHING;
INSERT INTO ports (code, name, parent_slug) VALUES ('OBSAA', 'Obs A', 'obs_region'), ('OBSBB', 'Obs B', 'obs_region') ON CONFLICT DO NOTHING;
SQL
"$BIN" serve --listen "127.0.0.1:$API_PORT" --database-url "$DB_URL" \
  --ingest-token "$TOKEN" --btc-rate-fixed "USD=43216.74,EUR=40000,GBP=35000" >"$WORK/api.log" 2>&1 &
PIDS+=($!)
"$BIN" provider --listen "127.0.0.1:$FEED_PORT" --http-listen "127.0.0.1:$PROV_HTTP" --rate 200 --seed 7 >"$WORK/provider.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PROV_HTTP/livez"
"$BIN" collector --provider "127.0.0.1:$FEED_PORT" --http-listen "127.0.0.1:$COLL_HTTP" \
  --database-url "$DB_URL" --data-dir "$WORK/collector" --flush-interval-ms 100 >"$WORK/collector.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$API_PORT/readyz"
wait_http "http://127.0.0.1:$COLL_HTTP/livez"

cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
$(for f in "$ROOT"/deploy/prometheus/rules/*.yml; do echo "  - $f"; done)
scrape_configs:
  - job_name: pricehub-api
    static_configs: [{targets: ['127.0.0.1:$API_PORT']}]
  - job_name: pricehub-provider
    static_configs: [{targets: ['127.0.0.1:$PROV_HTTP']}]
  - job_name: pricehub-collector
    static_configs: [{targets: ['127.0.0.1:$COLL_HTTP']}]
EOF
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
PROM="http://127.0.0.1:$PROM_PORT"
wait_http "$PROM/-/ready"

step "light load"
API="http://127.0.0.1:$API_PORT"
rows='[{"orig_code":"OBSAA","dest_code":"OBSBB","day":"2021-01-01","price":100},{"orig_code":"OBSAA","dest_code":"OBSBB","day":"2021-01-01","price":110},{"orig_code":"OBSAA","dest_code":"OBSBB","day":"2021-01-01","price":120}]'
for round in 1 2 3; do
  for _ in 1 2 3 4 5; do
    curl -fsS -o /dev/null "$API/rates?date_from=2021-01-01&date_to=2021-01-05&orig_code=OBSAA&dest_code=obs_region"
  done
  curl -sS -o /dev/null "$API/rates?date_from=2021-01-01&date_to=2021-01-05&orig_code=NOPE0&dest_code=OBSBB"
  curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "$rows" "$API/prices"
  curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "$rows" "$API/batches"
  curl -fsS -o /dev/null -H 'Content-Type: application/json' -d '{"currency":"USD","amount":"100"}' "$API/orders"
  curl -fsS -o /dev/null "$API/orders"
  sleep 2
done
echo "PASS load: $(curl -fsS "$API/rates?date_from=2021-01-01&date_to=2021-01-01&orig_code=OBSAA&dest_code=OBSBB")"

step "screenshots"
OUT="$WORK/img"
[ "${1:-}" = "--screenshots" ] && OUT="$ROOT/docs/img"
"$PY" deploy/grafana/screenshots.py "$PROM" "$OUT"

step "every expression against the real Prometheus"
"$PY" deploy/prometheus/check.py live "$PROM"
echo "PASS observability ($((SECONDS - T0)) s)"
