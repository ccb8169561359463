#!/usr/bin/env bash
# The delivery stage of scripts/test.sh: everything of the delivery kit that can run on
# this machine, against the real tools.
#   workflows   actionlint, zizmor (offline), pins/permissions/run-step checks
#   release     scripts/release.sh against stand-ins for AWS and cosign
#   hadolint    the Dockerfile and the Ansible test host's
#   k8s         kubectl kustomize of every overlay, kubernetes-validate, policy tests
#   terraform   python-hcl2 parse + module I/O + tfvars checks, checkov
#   coverage    scripts/coverage.sh's floor logic on made-up lcov files
#   ansible     ansible-lint; the playbook over SSH into a systemd + sshd container:
#               deploy, smoke test, /version build number, second run changed=0,
#               a broken release rolled back
# Checkers come from PyPI into a cached venv (.github/tests/requirements.txt). With
# CI=true a missing tool fails the stage; otherwise that part says SKIPPED loudly.
#   scripts/test-delivery.sh [PART...]     default: every part
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${PRICEHUB_CACHE_DIR:-$HOME/.cache/pricehub}
VENV=$CACHE/delivery-venv
REQ=.github/tests/requirements.txt
DOCKER=${DOCKER:-/usr/bin/docker}
PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=(tools workflows release hadolint k8s terraform coverage ansible)
FAILED=()
SUMMARY=()
in_ci() { [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ]; }

WORK=$(mktemp -d /tmp/h-delivery-stage.XXXXXX)
CONTAINER=""
cleanup() {
  if [ -n "$CONTAINER" ]; then "$DOCKER" rm -f "$CONTAINER" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

part() { # NAME FUNCTION: runs it, times it, records PASS/FAIL
  local name=$1 t0=$SECONDS rc=0
  echo "--- delivery: $name"
  # A background subshell, so that `set -e` holds inside the part (it would not in an
  # `||` context).
  (set -e; "$2") &
  wait $! || rc=$?
  SUMMARY+=("$(printf '%-10s %4d s  %s' "$name" $((SECONDS - t0)) "$([ $rc -eq 0 ] && echo PASS || echo FAIL)")")
  if [ $rc -ne 0 ]; then FAILED+=("$name"); echo "FAIL delivery: $name"; fi
}
checked() { # NAME CMD...: runs a checker that prints PASS/FAIL lines; shows all but PASS
  local name=$1 rc=0
  shift
  "$@" >"$WORK/$name.out" 2>&1 || rc=$?
  grep -v '^PASS' "$WORK/$name.out" || true
  echo "$name: $(grep -c '^PASS' "$WORK/$name.out") checks passed"
  return $rc
}
missing() { # WHAT: a missing tool fails under CI, else a loud skip
  if in_ci; then echo "FAIL delivery: $1 is missing (CI=true)"; return 1; fi
  echo "!!! SKIPPED delivery: $1 is missing (set CI=true to make this a failure) !!!"
}

tools() {
  local stamp="$VENV/.requirements.sha256" want
  want=$(sha256sum "$REQ" | cut -d' ' -f1)
  if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "delivery: installing the checkers into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"
    echo "$want" >"$stamp"
  fi
  if ! command -v jq >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null
  fi
  command -v jq >/dev/null 2>&1 || missing jq
  command -v kubectl >/dev/null 2>&1 || missing kubectl
}
export PATH="$VENV/bin:$PATH"

workflows() {
  actionlint .github/workflows/*.yml
  echo "PASS workflows: actionlint"
  zizmor --offline --quiet .github/workflows/
  echo "PASS workflows: zizmor --offline"
  checked workflow-checks python .github/tests/check_workflows.py
}

release() { .github/tests/test_release.sh; }

hadolint_all() {
  # The product image and the Ansible test host. (deploy/images/ holds the local
  # stand-ins for public base images, which only exist because no registry is reachable.)
  local files=(deploy/ansible/test/Dockerfile) f
  if [ -f Dockerfile ]; then
    files=(Dockerfile "${files[@]}")
  elif in_ci; then
    echo "FAIL hadolint: no Dockerfile at the root (CI=true)"
    return 1
  else
    echo "delivery: no root Dockerfile in this tree yet"
  fi
  for f in "${files[@]}"; do
    hadolint "$f"
    echo "PASS hadolint: $f"
  done
}

k8s() {
  command -v kubectl >/dev/null 2>&1 || { missing kubectl; return; }
  python deploy/k8s/components/monitoring/gen_prometheusrule.py --check
  checked k8s-policy python deploy/k8s/tests/policy.py
}

terraform() {
  checked terraform-checks python deploy/terraform/tests/check_terraform.py
  # --skip-download: no platform calls (offline); every skip is justified inline.
  checkov -d deploy/terraform --framework terraform --quiet --compact --skip-download >"$WORK/checkov.txt" 2>&1 \
    || { cat "$WORK/checkov.txt"; return 1; }
  echo "PASS terraform: checkov ($(grep -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' "$WORK/checkov.txt"))"
}

coverage() {
  local good=$WORK/good.lcov bad=$WORK/bad.lcov
  printf 'SF:%s/src/a.rs\n%s\nend_of_record\n' "$ROOT" "$(for i in $(seq 1 10); do echo "DA:$i,$([ "$i" -le 8 ] && echo 3 || echo 0)"; done)" >"$good"
  printf 'SF:%s/src/a.rs\n%s\nend_of_record\n' "$ROOT" "$(for i in $(seq 1 10); do echo "DA:$i,$([ "$i" -le 5 ] && echo 1 || echo 0)"; done)" >"$bad"
  COVERAGE_FLOOR=75 scripts/coverage.sh --check "$good" | grep -q '^PASS coverage: 80.00%'
  echo "PASS coverage: 80% passes a 75% floor"
  if COVERAGE_FLOOR=75 scripts/coverage.sh --check "$bad" >"$WORK/bad.out"; then
    echo "FAIL coverage: 50% passed a 75% floor"; return 1
  fi
  grep -q 'below the floor' "$WORK/bad.out"
  echo "PASS coverage: 50% fails a 75% floor"
  printf 'SF:/elsewhere/x.rs\nDA:1,1\nend_of_record\n' >"$WORK/none.lcov"
  if scripts/coverage.sh --check "$WORK/none.lcov" >/dev/null 2>&1; then
    echo "FAIL coverage: a report without src/ files passed"; return 1
  fi
  echo "PASS coverage: a report without src/ files fails"
}

ansible_part() {
  (cd deploy/ansible && ansible-lint --offline --nocolor -q site.yml roles/)
  echo "PASS ansible: ansible-lint"
  [ -x "$DOCKER" ] || { missing docker; return; }
  if [ -x scripts/docker-setup.sh ]; then scripts/docker-setup.sh >/dev/null; fi
  "$DOCKER" image inspect pricehub-local/debian:bookworm >/dev/null 2>&1 || { missing "image pricehub-local/debian:bookworm"; return; }
  bash deploy/ansible/test/run.sh "$WORK"
}

for p in "${PARTS[@]}"; do
  case "$p" in
    tools) part tools tools ;;
    workflows) part workflows workflows ;;
    release) part release release ;;
    hadolint) part hadolint hadolint_all ;;
    k8s) part k8s k8s ;;
    terraform) part terraform terraform ;;
    coverage) part coverage coverage ;;
    ansible) part ansible ansible_part ;;
    *) echo "unknown part $p"; exit 2 ;;
  esac
done
echo "---- delivery parts ----"
printf '%s\n' "${SUMMARY[@]}"
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "delivery: FAILED: ${FAILED[*]}"
  exit 1
fi
echo "delivery: all parts passed"
