#!/usr/bin/env bash
# Exercises scripts/release.sh (every subcommand release.yml runs) against STAND-INS for
# the AWS CLI and cosign (.github/tests/stand-ins): the cloud and the registry cannot be
# reached here. Checks the order that matters: migrations before any rollout, nothing
# rolled out when they fail, rollback to the recorded revisions, digests only.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/h-delivery-release.XXXXXX)
trap 'rm -rf "$work"' EXIT
export PATH="$PWD/.github/tests/stand-ins:$PATH"
export FAKE_AWS_STATE=$work/aws.json FAKE_AWS_LOG=$work/aws.log FAKE_COSIGN_LOG=$work/cosign.log
export PRICEHUB_RELEASE_STATE=$work/state GITHUB_REPOSITORY=example/pricehub
IMG=ghcr.io/example/pricehub@sha256:$(printf 'a%.0s' $(seq 64))
fails=0
ok() { echo "PASS release: $1"; }
bad() { echo "FAIL release: $1"; fails=$((fails + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

fresh_state() {
  python3 - "$FAKE_AWS_STATE" <<'PY'
import json, sys
tds = {f"pricehub-staging-{f}": [{"family": f"pricehub-staging-{f}", "networkMode": "awsvpc",
        "taskDefinitionArn": f"arn:aws:ecs:eu-west-1:1:task-definition/pricehub-staging-{f}:1",
        "containerDefinitions": [{"name": f, "image": "ghcr.io/example/pricehub@sha256:old"}]}]
       for f in ["api", "provider", "collector", "migrate"]}
svcs = {f"pricehub-staging-{s}": {"taskDefinition": tds[f"pricehub-staging-{s}"][0]["taskDefinitionArn"],
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"]}}}
        for s in ["api", "provider", "collector"]}
json.dump({"task_definitions": tds, "services": svcs, "tasks": {}}, open(sys.argv[1], "w"))
PY
  : >"$FAKE_AWS_LOG"
}
svc_td() { jq -r ".services[\"pricehub-staging-$1\"].taskDefinition" "$FAKE_AWS_STATE"; }
set_state() { jq "$1" "$FAKE_AWS_STATE" >"$work/s" && mv "$work/s" "$FAKE_AWS_STATE"; }

# meta: the build number reaches the tag, bad ones are refused.
version=$(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml","rb"))["package"]["version"])')
out=$(BUILD_NUMBER=42 GITHUB_OUTPUT=$work/out scripts/release.sh meta)
check "meta tags VERSION-build.N" '[ "$(grep build_tag= "$work/out")" = "build_tag=$version-build.42" ] && grep -q "build_tag=$version-build.42" <<<"$out"'
check "meta names the image in lowercase" '[ "$(GITHUB_REPOSITORY=Example/PriceHub scripts/release.sh meta | grep ^image=)" = "image=ghcr.io/example/pricehub" ]'
check "meta refuses a non-numeric BUILD_NUMBER" '! BUILD_NUMBER=4x scripts/release.sh meta >/dev/null 2>&1'

# sign: digests only, then sign and verify against this repository's release workflow.
: >"$FAKE_COSIGN_LOG"
check "sign refuses a tag" '! scripts/release.sh sign ghcr.io/example/pricehub:latest >/dev/null 2>&1 && [ ! -s "$FAKE_COSIGN_LOG" ]'
scripts/release.sh sign "$IMG" >/dev/null
check "sign signs then verifies the digest" '[ "$(head -n1 "$FAKE_COSIGN_LOG")" = "sign --yes $IMG" ] && sed -n 2p "$FAKE_COSIGN_LOG" | grep -q "^verify $IMG .*github.com/example/pricehub/"'

# deploy: migrations first, then every service on the new revision.
fresh_state
scripts/release.sh deploy staging "$IMG" >"$work/deploy.out"
first_update=$(grep -n '^ecs update-service' "$FAKE_AWS_LOG" | head -n1 | cut -d: -f1)
migration=$(grep -n '^ecs describe-tasks' "$FAKE_AWS_LOG" | head -n1 | cut -d: -f1)
check "deploy runs the migration task (and reads its exit code) before any rollout" '[ -n "$migration" ] && [ "$migration" -lt "$first_update" ]'
check "deploy runs migrations with the new image" 'grep -q "run-task .*pricehub-staging-migrate:2" "$FAKE_AWS_LOG"'
check "deploy moves every service to the new image" '[ "$(svc_td api)" = "arn:aws:ecs:eu-west-1:1:task-definition/pricehub-staging-api:2" ] && [ "$(svc_td collector)" = "arn:aws:ecs:eu-west-1:1:task-definition/pricehub-staging-collector:2" ] && [ "$(jq -r ".task_definitions[\"pricehub-staging-provider\"][1].containerDefinitions[0].image" "$FAKE_AWS_STATE")" = "$IMG" ]'
check "deploy waits for the services to be stable" '[ "$(grep -c "^ecs wait services-stable" "$FAKE_AWS_LOG")" = 3 ]'
scripts/release.sh rollback staging >/dev/null
check "rollback returns every service to the revision it replaced" '[ "$(svc_td api)" = "arn:aws:ecs:eu-west-1:1:task-definition/pricehub-staging-api:1" ] && [ "$(svc_td provider)" = "arn:aws:ecs:eu-west-1:1:task-definition/pricehub-staging-provider:1" ]'

# A failing migration: non-zero, nothing rolled out, and rollback has nothing to undo.
fresh_state
set_state '.migrate_exit = 3'
check "a failed migration fails the deploy" '! scripts/release.sh deploy staging "$IMG" >"$work/fail.out" 2>&1 && grep -q "migration task exited with .3." "$work/fail.out"'
check "a failed migration rolls nothing out" '! grep -q "^ecs update-service" "$FAKE_AWS_LOG" && [ "$(svc_td api)" = "arn:aws:ecs:eu-west-1:1:task-definition/pricehub-staging-api:1" ]'
check "rollback after a failed migration leaves services alone" 'scripts/release.sh rollback staging | grep -q "nothing to roll back"'

# A rollout that fails half-way is rolled back completely.
fresh_state
set_state '.update_fails = ["pricehub-staging-provider"]'
check "a failed rollout fails the deploy" '! scripts/release.sh deploy staging "$IMG" >/dev/null 2>&1'
set_state '.update_fails = []'
scripts/release.sh rollback staging >/dev/null
check "rollback after a half-done rollout restores the api too" '[ "$(svc_td api)" = "arn:aws:ecs:eu-west-1:1:task-definition/pricehub-staging-api:1" ]'
check "deploy refuses a tag" '! scripts/release.sh deploy staging ghcr.io/example/pricehub:latest >/dev/null 2>&1'

[ "$fails" -eq 0 ] || { echo "FAIL release: $fails check(s) failed"; exit 1; }
echo "PASS release: all checks"
