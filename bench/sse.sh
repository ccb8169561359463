#!/usr/bin/env bash
# SSE fan-out benchmark (SPEC performance target: 1,000 concurrent SSE clients on one API
# process, event delivery p99 under 250 ms, RSS growth under 50 MB).
#
#   bench/sse.sh                      CLIENTS=1000 DURATION=20 FEED_RATE=50
#   CLIENTS=2000 DURATION=60 bench/sse.sh
#
# Runs the embedded default (`pricehub all`: provider, collector and API in one process,
# SQLite), then bench/sse_client.rs twice: a reference run with one client, and CLIENTS
# clients at once. Each client records, per update event, now - published_ms (the
# server's fan-out) and now - the newest trade's timestamp_ms (from the feed, through
# the collector's 200 ms flush and commit). RSS of the API process is sampled before
# the clients connect and every 0.2 s while they are connected. Results are appended to
# bench/results/sse.txt. A latency figure on a busy machine includes the client's own
# scheduling: the client shares the CPUs with the server.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-1000}
DURATION=${DURATION:-20}
FEED_RATE=${FEED_RATE:-50}
# PROFILE=dev measures debug builds (slower; only when a release build is out of reach).
PROFILE=${PROFILE:-release}
DIR=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
BIN=${BIN:-target/$DIR/pricehub}
CLIENT=target/$DIR/examples/sse_client
[ -x "$BIN" ] || cargo build --profile "$PROFILE" --bin pricehub
[ -x "$CLIENT" ] && [ "$CLIENT" -nt bench/sse_client.rs ] || cargo build --profile "$PROFILE" --example sse_client
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d /tmp/pricehub-bench-sse.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
metric() { { curl -fs --max-time 5 "$1/metrics" || true; } | awk -v n="$2" '$1 == n { print $2 }'; }

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
"$BIN" all --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --no-demo-data \
  --feed-rate "$FEED_RATE" --rate-limit-per-minute 0 --log warn 2>"$WORK/server.log" &
SPID=$!
PIDS+=($SPID)
for _ in $(seq 100); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$BASE/readyz" >/dev/null || { echo "FAIL: the server did not become ready"; cat "$WORK/server.log"; exit 1; }
sleep 2

# run NAME N: one client run; prints its key=value lines into $WORK/NAME.txt, RSS samples too.
run() {
  local name=$1 n=$2
  local before peak=0 r
  before=$(rss_kb "$SPID")
  "$CLIENT" "$BASE" "$n" "$DURATION" >"$WORK/$name.txt" &
  local cpid=$!
  while kill -0 "$cpid" 2>/dev/null; do
    r=$(rss_kb "$SPID"); [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.2
  done
  wait "$cpid"
  echo "rss_before_kb=$before" >>"$WORK/$name.txt"
  echo "rss_peak_kb=$peak" >>"$WORK/$name.txt"
}
get() { awk -F= -v k="$2" '$1 == k { print $2 }' "$WORK/$1.txt"; }

t0=$(date +%s)
run ref 1
t1=$(date +%s)
run load "$CLIENTS"
t2=$(date +%s)
dropped=$(metric "$BASE" pricehub_stream_clients_dropped_total)

growth_mb=$(awk -v a="$(get load rss_before_kb)" -v b="$(get load rss_peak_kb)" 'BEGIN { printf "%.1f", (b - a) / 1024 }')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0) printf "%.2fx", b / a; else print "n/a" }'; }
p99=$(get load fanout_p99_ms)
feed_p99=$(get load feed_p99_ms)
verdict() { awk -v v="$1" -v max="$2" 'BEGIN { print (v >= 0 && v < max) ? "PASS" : "MISS" }'; }
SUMMARY=$(cat <<TXT
## $(date -u +%Y-%m-%dT%H:%MZ) bench/sse.sh PROFILE=$PROFILE CLIENTS=$CLIENTS DURATION=${DURATION}s FEED_RATE=$FEED_RATE ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))

| | 1 client (reference) | $CLIENTS clients | ratio |
|---|---|---|---|
| connected / failed / ended early | $(get ref connected) / $(get ref failed) / $(get ref ended_early) | $(get load connected) / $(get load failed) / $(get load ended_early) | |
| update events received | $(get ref events) | $(get load events) | $(ratio "$(get ref events)" "$(get load events)") |
| fan-out latency p50 / p99 / max (ms) | $(get ref fanout_p50_ms) / $(get ref fanout_p99_ms) / $(get ref fanout_max_ms) | $(get load fanout_p50_ms) / $p99 / $(get load fanout_max_ms) | p99 $(ratio "$(get ref fanout_p99_ms)" "$p99") |
| from-the-feed latency p50 / p99 / max (ms) | $(get ref feed_p50_ms) / $(get ref feed_p99_ms) / $(get ref feed_max_ms) | $(get load feed_p50_ms) / $feed_p99 / $(get load feed_max_ms) | p99 $(ratio "$(get ref feed_p99_ms)" "$feed_p99") |
| API RSS before → peak (MB) | $(( $(get ref rss_before_kb) / 1024 )) → $(( $(get ref rss_peak_kb) / 1024 )) | $(( $(get load rss_before_kb) / 1024 )) → $(( $(get load rss_peak_kb) / 1024 )) | growth $growth_mb MB |
| clients dropped (server counter) | | $dropped | |

- fan-out p99 < 250 ms: $(verdict "$p99" 250) ($p99 ms)
- RSS growth < 50 MB: $(verdict "$growth_mb" 50) ($growth_mb MB)
- from-the-feed p99 (includes the collector's 200 ms flush interval): $feed_p99 ms
- run times: reference $((t1 - t0)) s, load $((t2 - t1)) s
TXT
)
echo "$SUMMARY"
mkdir -p bench/results
printf '%s\n\n' "$SUMMARY" >>bench/results/sse.txt
