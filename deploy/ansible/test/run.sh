#!/usr/bin/env bash
# The Ansible deploy, for real: a Debian bookworm container running systemd as PID 1 and
# sshd (deploy/ansible/test/Dockerfile), the playbook over SSH, then:
#   1. deploy: PostgreSQL installed by the role, migrations, the three hardened units,
#      the 2021 rates dump imported; scripts/smoke.sh passes against the deployed API;
#      /version reports the BUILD_NUMBER the binary was built with;
#   2. the same playbook again reports changed=0;
#   3. a release that cannot start: the play fails, the host is rolled back to the
#      previous release, which serves again.
# Called by scripts/test-delivery.sh (part `ansible`) with a scratch directory.
#   deploy/ansible/test/run.sh WORKDIR
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$PWD
WORK=${1:?usage: run.sh WORKDIR}
DOCKER=${DOCKER:-/usr/bin/docker}
IMAGE=h-delivery-sshd:test
NAME=h-delivery-target-$$
BUILD_NUMBER_UNDER_TEST=4242
DATA=${PRICEHUB_TEST_DATA:-$ROOT/../shared/data}
ok() { echo "PASS ansible: $*"; }
fail() { echo "FAIL ansible: $*"; exit 1; }
t() { echo "    ($(( SECONDS - T0 )) s) $*"; }
T0=$SECONDS
trap '"$DOCKER" rm -f "$NAME" >/dev/null 2>&1 || true' EXIT

# The SSH host.
DOCKER_BUILDKIT=1 "$DOCKER" build -q -t "$IMAGE" deploy/ansible/test >/dev/null
t "image $IMAGE built"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/id"
cp "$WORK/id.pub" "$WORK/authorized_keys"
"$DOCKER" run -d --name "$NAME" --cap-add SYS_ADMIN --security-opt seccomp=unconfined \
  --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
  -v "$WORK/authorized_keys:/root/.ssh/authorized_keys:ro" \
  -p 127.0.0.1::22 -p 127.0.0.1::3000 "$IMAGE" >/dev/null
SSH_PORT=$("$DOCKER" port "$NAME" 22/tcp | head -n1 | sed 's/.*://')
HTTP_PORT=$("$DOCKER" port "$NAME" 3000/tcp | head -n1 | sed 's/.*://')
SSH=(ssh -i "$WORK/id" -o UserKnownHostsFile="$WORK/known_hosts" -o StrictHostKeyChecking=accept-new
     -o BatchMode=yes -p "$SSH_PORT" root@127.0.0.1)
for _ in $(seq 1 60); do "${SSH[@]}" true 2>/dev/null && break; sleep 1; done
pid1=$("${SSH[@]}" 'ps -p 1 -o comm=; systemctl --version | head -n1')
[[ $pid1 == systemd*"systemd 252"* ]] || fail "systemd 252 as PID 1 over SSH, got: $pid1"
ok "systemd as PID 1 and sshd on 127.0.0.1:$SSH_PORT ($(sed -n 2p <<<"$pid1"))"

# The release: this tree's binary, built with a build number: the debug build the test
# suite uses (built through a test target so the features, and so the dependencies
# already compiled, are the test suite's; only pricehub itself recompiles), debug info
# stripped to keep the copy small.
BUILD_NUMBER=$BUILD_NUMBER_UNDER_TEST cargo test --locked --quiet --no-run --test api
objcopy --strip-debug target/debug/pricehub "$WORK/pricehub"
t "release binary built with BUILD_NUMBER=$BUILD_NUMBER_UNDER_TEST"

token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
cat >"$WORK/inventory.yml" <<INV
pricehub:
  hosts:
    h-delivery-target:
      ansible_host: 127.0.0.1
      ansible_port: $SSH_PORT
      ansible_user: root
      ansible_ssh_private_key_file: $WORK/id
      ansible_ssh_common_args: "-o UserKnownHostsFile=$WORK/known_hosts -o StrictHostKeyChecking=accept-new"
  vars:
    pricehub_binary_src: $WORK/pricehub
    pricehub_db_password: $(python3 -c 'import secrets; print(secrets.token_hex(16))')
    pricehub_ingest_token: $token
INV
import_args=()
if [ -f "$DATA/rates-2021.sql" ]; then
  import_args=(-e "pricehub_import_dump=$(cd "$DATA" && pwd)/rates-2021.sql")
elif [ "${CI:-}" = true ]; then
  fail "reference data missing in $DATA (CI=true)"
else
  echo "!!! SKIPPED part of ansible: no $DATA/rates-2021.sql, the smoke test's /rates check will fail !!!"
fi
play() { # LOG ARGS...: runs the playbook; its recap line for the host into $RECAP
  local log=$1
  shift
  local rc=0
  (cd deploy/ansible && ANSIBLE_CONFIG=ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 \
    ansible-playbook -i "$WORK/inventory.yml" -e @test/group_vars.yml "${import_args[@]}" "$@" site.yml) >"$log" 2>&1 || rc=$?
  RECAP=$(grep -E '^h-delivery-target +:' "$log" | tail -n1 || true)
  return $rc
}

# 1. Deploy.
play "$WORK/play1.log" || { tail -n 40 "$WORK/play1.log"; fail "first deploy failed"; }
ok "first deploy over SSH: $RECAP"
t "deployed"
units=$("${SSH[@]}" 'for u in serve provider collector; do systemctl show pricehub-$u --property=ActiveState,User,NoNewPrivileges,ProtectSystem | sort | tr "\n" " "; echo; done')
want="ActiveState=active NoNewPrivileges=yes ProtectSystem=strict User=pricehub "
[ "$(grep -cxF "$want" <<<"$units")" = 3 ] \
  || fail "three units active as user pricehub with NoNewPrivileges and ProtectSystem=strict: $units"
ok "serve, provider, collector active as pricehub, NoNewPrivileges=yes, ProtectSystem=strict"
SMOKE_INGEST_TOKEN=$token scripts/smoke.sh "http://127.0.0.1:$HTTP_PORT" | sed 's/^/    smoke: /'
[ "${PIPESTATUS[0]}" = 0 ] || fail "scripts/smoke.sh against the Ansible-deployed host"
ok "scripts/smoke.sh passes against the deployed host"
build=$(curl -sS -m 10 "http://127.0.0.1:$HTTP_PORT/version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["build"])')
[ "$build" = "$BUILD_NUMBER_UNDER_TEST" ] || fail "/version build $build, wanted $BUILD_NUMBER_UNDER_TEST"
ok "BUILD_NUMBER=$BUILD_NUMBER_UNDER_TEST given to the build reaches /version of the deployed host"

# 2. Idempotent.
play "$WORK/play2.log" || { tail -n 40 "$WORK/play2.log"; fail "second run failed"; }
[[ $RECAP == *" changed=0 "* ]] || { grep -B3 '^changed:' "$WORK/play2.log" | head -n 30; fail "second run changed something: $RECAP"; }
ok "second run: $RECAP"
t "second run"

# 3. A release that cannot start is rolled back.
good=$("${SSH[@]}" readlink /opt/pricehub/current)
printf '#!/bin/sh\n[ "$1" = migrate ] && exit 0\necho "this release cannot start" >&2\nexit 1\n' >"$WORK/broken"
chmod +x "$WORK/broken"
if play "$WORK/play3.log" -e "pricehub_binary_src=$WORK/broken" -e pricehub_health_retries=5; then
  fail "a release that cannot start was deployed without failing"
fi
grep -q "rolled back to $good" "$WORK/play3.log" || { tail -n 30 "$WORK/play3.log"; fail "no rollback message"; }
now=$("${SSH[@]}" readlink /opt/pricehub/current)
[ "$now" = "$good" ] || fail "current is $now after the rollback, wanted $good"
status=$(curl -sS -m 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/readyz" || true)
for _ in $(seq 1 30); do [ "$status" = 200 ] && break; sleep 1; status=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/readyz" || true); done
[ "$status" = 200 ] || fail "/readyz $status after the rollback"
ok "a release that cannot start: play failed, host rolled back to $(basename "$good"), /readyz 200 again"
t "rollback"
