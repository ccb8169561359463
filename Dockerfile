# pricehub container image: one binary, every subcommand.
#   docker build -t pricehub .                       # needs BuildKit (Docker 23+, or
#   docker run -p 3000:3000 pricehub                 #  DOCKER_BUILDKIT=1 on 20.10)
# With no arguments the container runs the embedded default (`pricehub all`: SQLite in
# /data, demo data, live feed) on 0.0.0.0:3000. Other processes: `serve`, `provider`,
# `collector`, `migrate`, `import` (see compose.yaml).
#
# Base images are build arguments whose defaults are the real public images; without a
# registry, point them at local ones (scripts/docker-setup.sh builds stand-ins from
# Debian's packages and deploy/images/local.env names them).

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
# release is what ships; another Cargo profile (e.g. dev) makes a quicker test image.
ARG CARGO_PROFILE=release
ARG BUILD_NUMBER=0
ARG GIT_COMMIT=unknown
WORKDIR /src
COPY . .
# The registry and the target directory live in BuildKit cache mounts: a rebuild after
# a source change recompiles pricehub only, not its ~300 dependencies.
RUN --mount=type=cache,id=pricehub-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=pricehub-cargo-target,target=/src/target \
    BUILD_NUMBER="$BUILD_NUMBER" GIT_COMMIT="$GIT_COMMIT" \
    cargo build --locked --profile "$CARGO_PROFILE" --bin pricehub \
 && dir=$([ "$CARGO_PROFILE" = dev ] && echo debug || echo "$CARGO_PROFILE") \
 && mkdir -p /out/data \
 && cp "target/$dir/pricehub" /out/pricehub \
 && /out/pricehub --version

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG BUILD_NUMBER=0
ARG GIT_COMMIT=unknown
ARG CREATED=unknown
ARG SOURCE_URL=unknown
LABEL org.opencontainers.image.title="pricehub" \
      org.opencontainers.image.description="Self-hostable price platform: live price feed, freight-rates API, BTC buy orders, status page" \
      org.opencontainers.image.version="${VERSION}+build.${BUILD_NUMBER}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="MIT" \
      org.pricehub.build-number="${BUILD_NUMBER}"
COPY --from=build /out/pricehub /usr/local/bin/pricehub
COPY --from=build --chown=10001:10001 /out/data /data
USER 10001:10001
WORKDIR /data
ENV PRICEHUB_LISTEN=0.0.0.0:3000 \
    PRICEHUB_DATA_DIR=/data \
    PRICEHUB_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 3000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/pricehub", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/pricehub"]
