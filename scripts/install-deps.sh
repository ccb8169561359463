#!/usr/bin/env bash
# Installs the system packages pricehub's tests and benchmarks use, when missing:
# PostgreSQL server binaries, Redis, Prometheus (promtool), wrk, hyperfine, Chromium and
# its WebDriver (the page tests drive it).
# Debian/Ubuntu only (apt); does nothing for what is already there.
#   scripts/install-deps.sh            # what the test suite needs
#   scripts/install-deps.sh --bench    # plus the load generators
set -euo pipefail

want=()
have_pg() { ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null 2>&1; }
have_pg || want+=(postgresql)
command -v psql >/dev/null 2>&1 || want+=(postgresql-client)
command -v redis-server >/dev/null 2>&1 || want+=(redis-server)
command -v promtool >/dev/null 2>&1 || want+=(prometheus)
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v chromedriver >/dev/null 2>&1 || want+=(chromium-driver)
if [ "${1:-}" = "--bench" ]; then
  command -v wrk >/dev/null 2>&1 || want+=(wrk)
  command -v hyperfine >/dev/null 2>&1 || want+=(hyperfine)
fi

if [ ${#want[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: missing ${want[*]} and no apt-get here; install them by hand" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${want[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
# Debian's packages start their services; the tests start their own throw-away ones.
for svc in redis-server prometheus postgresql; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
