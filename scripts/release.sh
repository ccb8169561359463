#!/usr/bin/env bash
# Release steps of .github/workflows/release.yml, one subcommand each, so the workflow
# runs only this tested script (tests: .github/tests/test_release.sh, with stand-ins for
# the cloud and the registry, which cannot be reached from the test machine).
#   scripts/release.sh meta                      image name, version and VERSION-build.N (BUILD_NUMBER)
#   scripts/release.sh sign IMAGE@sha256:...     cosign keyless sign + verify of a digest
#   scripts/release.sh deploy ENV IMAGE@sha256:...
#        ECS (deploy/terraform): register task definitions with the new image, run the
#        migration task and require exit 0, then update the services and wait until
#        they are stable. The revisions replaced are saved for `rollback`.
#   scripts/release.sh rollback ENV              back to the saved revisions
# Environment: PRICEHUB_ECS_CLUSTER (default pricehub-ENV), PRICEHUB_RELEASE_STATE
# (directory for the rollback record, default .release), GITHUB_OUTPUT when in Actions.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "release: $*" >&2; exit 1; }
SERVICES=(api provider collector)

output() { # key=value to the step outputs (and stdout)
  echo "$1"
  if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "$1" >>"$GITHUB_OUTPUT"; fi
}

require_digest() {
  [[ "$1" =~ ^[a-z0-9./_-]+(:[0-9]+)?[a-z0-9./_-]*@sha256:[0-9a-f]{64}$ ]] \
    || die "expected IMAGE@sha256:<64 hex> (a digest, never a tag), got '$1'"
}

cmd_meta() {
  local version build
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
  [ -n "$version" ] || die "no version in Cargo.toml"
  build=${BUILD_NUMBER:-0}
  [[ "$build" =~ ^[0-9]+$ ]] || die "BUILD_NUMBER must be a non-negative integer, got '$build'"
  # GHCR wants lowercase repository names; GITHUB_REPOSITORY keeps the owner's case.
  output "image=ghcr.io/$(tr '[:upper:]' '[:lower:]' <<<"${GITHUB_REPOSITORY:-pricehub/pricehub}")"
  output "version=$version"
  output "build_number=$build"
  output "build_tag=$version-build.$build"
}

cmd_sign() {
  local ref=${1:?usage: release.sh sign IMAGE@sha256:DIGEST}
  require_digest "$ref"
  local repo=${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is needed to verify the signer}
  cosign sign --yes "$ref"
  cosign verify "$ref" \
    --certificate-oidc-issuer https://token.actions.githubusercontent.com \
    --certificate-identity-regexp "^https://github.com/$repo/\.github/workflows/release\.yml@" >/dev/null
  echo "signed and verified $ref"
}

state_file() { echo "${PRICEHUB_RELEASE_STATE:-.release}/$1.previous"; }

cmd_deploy() {
  local env=${1:?usage: release.sh deploy ENV IMAGE@DIGEST} ref=${2:?usage: release.sh deploy ENV IMAGE@DIGEST}
  require_digest "$ref"
  local cluster=${PRICEHUB_ECS_CLUSTER:-pricehub-$env} state
  state=$(state_file "$env")
  mkdir -p "$(dirname "$state")"
  # A record from an earlier deploy must not be what a failure of this one rolls back to.
  rm -f "$state"
  : >"$state.new"

  # New revisions of every task definition (services and the migration task), same
  # settings, new image.
  declare -A revision
  local family
  for family in "${SERVICES[@]}" migrate; do
    local current new
    current=$(aws ecs describe-task-definition --task-definition "pricehub-$env-$family" \
      --query taskDefinition --output json)
    new=$(jq --arg img "$ref" '
      {family, taskRoleArn, executionRoleArn, networkMode, containerDefinitions,
       volumes, requiresCompatibilities, cpu, memory, runtimePlatform, ephemeralStorage}
      | with_entries(select(.value != null))
      | .containerDefinitions |= map(.image = $img)' <<<"$current")
    revision[$family]=$(aws ecs register-task-definition --cli-input-json "$new" \
      --query taskDefinition.taskDefinitionArn --output text)
    echo "registered ${revision[$family]}"
  done

  # Migrations first: a one-off task of the new image in the api service's network.
  local network task code
  network=$(aws ecs describe-services --cluster "$cluster" --services "pricehub-$env-api" \
    --query 'services[0].networkConfiguration' --output json)
  task=$(aws ecs run-task --cluster "$cluster" --launch-type FARGATE \
    --task-definition "${revision[migrate]}" --network-configuration "$network" \
    --started-by "release-${GITHUB_RUN_NUMBER:-local}" --query 'tasks[0].taskArn' --output text)
  echo "migration task $task"
  aws ecs wait tasks-stopped --cluster "$cluster" --tasks "$task"
  code=$(aws ecs describe-tasks --cluster "$cluster" --tasks "$task" \
    --query 'tasks[0].containers[0].exitCode' --output text)
  [ "$code" = "0" ] || die "migration task exited with '$code'; nothing rolled out"
  echo "migrations applied"

  # Then the rollout. The revisions being replaced are recorded first, so a rollout that
  # fails half-way can still be rolled back.
  local svc
  for svc in "${SERVICES[@]}"; do
    local previous
    previous=$(aws ecs describe-services --cluster "$cluster" --services "pricehub-$env-$svc" \
      --query 'services[0].taskDefinition' --output text)
    echo "pricehub-$env-$svc $previous" >>"$state.new"
  done
  mv "$state.new" "$state"
  for svc in "${SERVICES[@]}"; do
    aws ecs update-service --cluster "$cluster" --service "pricehub-$env-$svc" \
      --task-definition "${revision[$svc]}" --query service.serviceName --output text >/dev/null
    echo "rolling out pricehub-$env-$svc -> ${revision[$svc]}"
  done
  for svc in "${SERVICES[@]}"; do
    aws ecs wait services-stable --cluster "$cluster" --services "pricehub-$env-$svc"
  done
  echo "deployed $ref to $env"
}

cmd_rollback() {
  local env=${1:?usage: release.sh rollback ENV}
  local cluster=${PRICEHUB_ECS_CLUSTER:-pricehub-$env} state
  state=$(state_file "$env")
  if [ ! -s "$state" ]; then
    echo "release: no rollout recorded for $env, nothing to roll back"
    return 0
  fi
  local name previous
  while read -r name previous; do
    aws ecs update-service --cluster "$cluster" --service "$name" \
      --task-definition "$previous" --query service.serviceName --output text >/dev/null
    echo "rolling back $name -> $previous"
  done <"$state"
  while read -r name _; do
    aws ecs wait services-stable --cluster "$cluster" --services "$name"
  done <"$state"
  echo "rolled back $env"
}

case "${1:-}" in
  meta) shift; cmd_meta "$@" ;;
  sign) shift; cmd_sign "$@" ;;
  deploy) shift; cmd_deploy "$@" ;;
  rollback) shift; cmd_rollback "$@" ;;
  *) die "usage: release.sh meta | sign IMAGE@DIGEST | deploy ENV IMAGE@DIGEST | rollback ENV" ;;
esac
