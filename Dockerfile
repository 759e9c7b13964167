# syntax=docker/dockerfile:1
#
# commerce-gateway: one image for every subcommand (serve, worker, migrate, seed, ...).
#
#   docker build -t commerce-gateway:local .
#   docker run --rm commerce-gateway:local --help
#
# Needs BuildKit (the default builder of Docker 23+ and of `docker compose build`) for
# the target-directory cache mount.

# ---- build ----------------------------------------------------------------------------
FROM rust:1.89-slim-bookworm AS builder
WORKDIR /src

# Dependencies first, downloaded into a layer that only changes with the manifests.
# Cargo wants the targets the manifest names to exist before it resolves anything:
# stand-ins do, and are removed again.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo fetch --locked \
    && rm -rf src

# Then the sources (the migrations are embedded in the binary at compile time). The
# target directory is a BuildKit cache: a code change recompiles the crate, not its
# dependencies.
COPY . .
RUN --mount=type=cache,id=commerce-gateway-target,target=/src/target,sharing=locked \
    cargo build --release --locked --offline --bin commerce-gateway \
    && install -D -m 0755 target/release/commerce-gateway /out/commerce-gateway

# ---- runtime --------------------------------------------------------------------------
FROM debian:12.11-slim AS runtime

# TLS roots for outgoing HTTPS (webhooks, CDN purges, OTLP over TLS). Nothing else:
# bash (essential in Debian) is what compose's health check uses. Not pinned to a
# version: Debian replaces ca-certificates within a release and drops the old one.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin gateway

COPY --from=builder /out/commerce-gateway /usr/local/bin/commerce-gateway

USER 10001:10001
# The binary listens on 127.0.0.1 by default: in a container it must listen on all
# interfaces. METRICS_ADDR (the worker's /metrics) is set where a worker runs.
ENV LISTEN_ADDR=0.0.0.0:8080
# 8080: HTTP API, /healthz, /readyz, /metrics (serve); 9091: /metrics of `worker`.
EXPOSE 8080 9091

ENTRYPOINT ["commerce-gateway"]
CMD ["serve"]
