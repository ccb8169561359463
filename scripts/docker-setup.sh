#!/usr/bin/env bash
# Makes this machine able to build and run pricehub's containers without any image
# registry:
#   1. installs docker.io, docker-compose and debootstrap when they are missing;
#   2. starts dockerd when no engine answers;
#   3. builds the local base images from Debian's packages when they are missing or their
#      recipe (deploy/images/<name>/) changed:
#        pricehub-local/debian:bookworm     debootstrap --variant=minbase + docker import
#        pricehub-local/rust:bookworm       builder: gcc + this host's Rust toolchain + CA bundle
#        pricehub-local/runtime:bookworm    distroless-cc-like runtime (glibc, libgcc, CAs)
#        pricehub-local/postgres:15         stand-ins for the official images, honouring
#        pricehub-local/redis:7             the parts of their contract compose.yaml uses
#        pricehub-local/prometheus:2
#        pricehub-local/nginx:1
#      The stand-ins never carry the official names; compose.yaml and the Dockerfile reach
#      them through their image variables (deploy/images/local.env lists them).
# Idempotent: a second run with everything in place takes about a second.
#   scripts/docker-setup.sh            # everything
#   scripts/docker-setup.sh --rebuild  # rebuild the local images even if present
# Environment: PRICEHUB_CACHE_DIR (default ~/.cache/pricehub; the debootstrap tarball is
# kept there), DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${PRICEHUB_CACHE_DIR:-$HOME/.cache/pricehub}/docker
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DOCKER=${DOCKER:-/usr/bin/docker}
REBUILD=0
[ "${1:-}" = --rebuild ] && REBUILD=1
mkdir -p "$CACHE"
t0=$SECONDS
log() { echo "docker-setup: $*"; }

# ---- 1. packages
missing=()
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
[ -x "$DOCKER" ] || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH=$PATH:/usr/sbin:/sbin

# ---- 2. the engine
if ! "$DOCKER" info >/dev/null 2>&1; then
  log "starting dockerd (log: $CACHE/dockerd.log)"
  nohup /usr/sbin/dockerd >"$CACHE/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do
    "$DOCKER" info >/dev/null 2>&1 && break
    sleep 0.5
  done
  "$DOCKER" info >/dev/null 2>&1 || { log "FAIL: dockerd did not start; see $CACHE/dockerd.log"; tail -20 "$CACHE/dockerd.log" >&2; exit 1; }
fi
log "engine $("$DOCKER" version --format '{{.Server.Version}}') ($("$DOCKER" info --format '{{.Driver}}, {{.CgroupDriver}}'))"

# ---- 3. images
# The recipe hash of an image: its deploy/images/<name>/ files plus any extra input.
recipe_hash() { # DIR [EXTRA...]
  local dir=$1
  shift
  { (cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum); printf '%s\n' "$@"; } | sha256sum | cut -c1-16
}
have_image() { # TAG HASH
  [ "$REBUILD" = 0 ] || return 1
  local got
  got=$("$DOCKER" image inspect --format '{{ index .Config.Labels "org.pricehub.recipe" }}' "$1" 2>/dev/null) || return 1
  [ "$got" = "$2" ]
}

DEBIAN_IMAGE=pricehub-local/debian:bookworm
if ! "$DOCKER" image inspect "$DEBIAN_IMAGE" >/dev/null 2>&1 || [ "$REBUILD" = 1 ]; then
  tarball=$CACHE/debian-bookworm-minbase.tar
  if [ ! -s "$tarball" ]; then
    log "debootstrap --variant=minbase bookworm from $MIRROR (about 40 s)"
    root=$(mktemp -d /tmp/pricehub-debootstrap.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
      || { log "FAIL: debootstrap; see $CACHE/debootstrap.log"; tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
    trap - EXIT
  fi
  log "docker import $tarball as $DEBIAN_IMAGE"
  "$DOCKER" import "$tarball" "$DEBIAN_IMAGE" >/dev/null
fi

build_image() { # NAME TAG [CONTEXT] — context defaults to deploy/images/NAME
  local name=$1 tag=$2 ctx=${3:-deploy/images/$1} hash=$4 s=$SECONDS
  if have_image "$tag" "$hash"; then
    log "$tag present"
    return
  fi
  log "building $tag"
  DOCKER_BUILDKIT=1 "$DOCKER" build -q --build-arg BASE_IMAGE="$DEBIAN_IMAGE" \
    --label org.pricehub.recipe="$hash" --label org.pricehub.stand-in="$name" \
    -t "$tag" "$ctx" >"$CACHE/build-$name.log" 2>&1 \
    || { log "FAIL: building $tag; see $CACHE/build-$name.log"; tail -30 "$CACHE/build-$name.log" >&2; exit 1; }
  log "built $tag in $((SECONDS - s)) s"
}

# The builder carries this host's toolchain (bin + lib; no docs) and CA bundle.
sysroot=$(readlink -f "$(rustc --print sysroot)")
rust_version=$(rustc --version)
ca=/etc/ssl/certs/ca-certificates.crt
hash=$(recipe_hash deploy/images/builder "$rust_version" "$(sha256sum "$ca")")
if ! have_image pricehub-local/rust:bookworm "$hash"; then
  ctx=$CACHE/builder-context
  rm -rf "$ctx"
  mkdir -p "$ctx/toolchain"
  cp deploy/images/builder/Dockerfile "$ctx/"
  cp "$ca" "$ctx/ca-certificates.crt"
  # Hard links when on the same file system (fast), copies otherwise.
  cp -al "$sysroot/bin" "$sysroot/lib" "$ctx/toolchain/" 2>/dev/null \
    || cp -a "$sysroot/bin" "$sysroot/lib" "$ctx/toolchain/"
  build_image rust pricehub-local/rust:bookworm "$ctx" "$hash"
  rm -rf "$ctx"
else
  log "pricehub-local/rust:bookworm present"
fi

for spec in runtime:bookworm postgres:15 redis:7 prometheus:2 nginx:1; do
  name=${spec%%:*}
  build_image "$name" "pricehub-local/$spec" "deploy/images/$name" "$(recipe_hash "deploy/images/$name")"
done

log "ready in $((SECONDS - t0)) s; use them with: set -a; . deploy/images/local.env; set +a"
