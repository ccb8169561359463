#!/bin/sh
# As the official image: a bare `redis-server …` runs as the redis user with protected
# mode off and no config file.
set -eu
if [ "${1:-}" = redis-server ]; then
  shift
  if [ "$(id -u)" = 0 ]; then chown redis:redis /data; fi
  set -- redis-server --protected-mode no --bind '* -::*' "$@"
  if [ "$(id -u)" = 0 ]; then exec setpriv --reuid=redis --regid=redis --init-groups "$@"; fi
fi
exec "$@"
