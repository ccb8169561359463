#!/usr/bin/env bash
# A throw-away PostgreSQL server for tests and benchmarks, from the local binaries.
#   scripts/pg.sh start DIR [PORT]   initdb DIR if needed, start on 127.0.0.1:PORT
#                                    (a free port when omitted); prints the admin URL
#   scripts/pg.sh stop DIR
#   PG_FAST=1 turns off fsync and synchronous commit (tests only, never benchmarks).
#   PG_PASSWORD=… makes a server that checks passwords (scram-sha-256) for its `postgres`
#   user (tests of wrong-password start-ups); the URL printed then carries no password.
# initdb and postgres refuse to run as root: as root they run as the `postgres` user.
set -euo pipefail

cmd=${1:?usage: pg.sh start|stop DIR [PORT]}
dir=${2:?usage: pg.sh start|stop DIR [PORT]}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [ -z "$PGBIN" ] && command -v pg_ctl >/dev/null 2>&1; then PGBIN=$(dirname "$(command -v pg_ctl)"); fi
[ -x "$PGBIN/pg_ctl" ] || { echo "pg.sh: PostgreSQL server binaries not found (run scripts/install-deps.sh)" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    port=${3:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      auth=(--auth=trust)
      if [ -n "${PG_PASSWORD:-}" ]; then
        printf '%s\n' "$PG_PASSWORD" >"$dir/pwfile"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/pwfile"
        auth=(--auth-host=scram-sha-256 --auth-local=trust "--pwfile=$dir/pwfile")
      fi
      as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres "${auth[@]}" -E UTF8 --locale=C -N >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
      rm -f "$dir/pwfile"
    fi
    opts="-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c shared_buffers=256MB"
    if [ "${PG_FAST:-0}" = "1" ]; then
      opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null \
      || { tail -n 30 "$dir/server.log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -f "$dir/data/postmaster.pid" ] || exit 0
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  *)
    echo "usage: pg.sh start|stop DIR [PORT]" >&2; exit 2 ;;
esac
