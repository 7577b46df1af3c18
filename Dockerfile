# syntax=docker/dockerfile:1
# One image for every backend binary of the gateway: data-service,
# calculation-service, auth-service, ops-service, ratelimit-service and the
# gatewayctl CLI. Each container picks its binary with `command`
# (docker-compose.yml, deploy/base/kubernetes/*.yaml).
#
#   docker build -t borrow-rate/backends:0.1.0 .
#
# The final stage is distroless (glibc, CA certificates, no shell, no package
# manager), runs as the unprivileged user 65532 and works with a read-only
# root filesystem. Migrations are compiled into the binaries and applied on
# start.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0
# The whole workspace is needed for Cargo to resolve it; target/, .venv and
# other local state are excluded by Dockerfile.dockerignore.
COPY Cargo.toml Cargo.lock ./
COPY backends backends
COPY filters filters
COPY tests tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile server --workspace \
        --bin data-service \
        --bin calculation-service \
        --bin auth-service \
        --bin ops-service \
        --bin ratelimit-service \
        --bin gatewayctl \
 && mkdir -p /out \
 && for b in data-service calculation-service auth-service ops-service ratelimit-service gatewayctl; do \
        cp "target/server/$b" /out/; \
    done

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="borrow-rate-backends" \
      org.opencontainers.image.description="Backends of the Borrow Rate & Locate Fee gateway" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ /usr/local/bin/
WORKDIR /home/nonroot
USER 65532:65532
EXPOSE 8081 8082 8083 8084 8090 8091
CMD ["/usr/local/bin/data-service"]
