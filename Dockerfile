# syntax=docker/dockerfile:1
#
# Container images for raftcfg, one target per image (BuildKit required for
# the cache mounts):
#
#   docker build --target raftcfg  -t ghcr.io/raftcfg/raftcfg:0.1.0 .
#   docker build --target operator -t ghcr.io/raftcfg/raftcfg-operator:0.1.0 .
#
# Both targets share the builder stage, which compiles both binaries, so the
# second build reuses the first one's work. The final images are distroless
# (glibc, libstdc++ for RocksDB, CA certificates; no shell) and run as the
# unprivileged user 65532.

FROM rust:1.95-bookworm AS builder
# RocksDB's Rust bindings are generated with bindgen, which needs libclang.
RUN apt-get update \
    && apt-get install -y --no-install-recommends clang libclang-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# target/ is a cache mount, absent from the image, so the binaries are
# copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        -p raftcfg-node --bin raftcfg \
        -p raftcfg-operator --bin raftcfg-operator \
    && install -m 0755 -t /usr/local/bin target/release/raftcfg target/release/raftcfg-operator \
    && install -d -o 65532 -g 65532 /out/var/lib/raftcfg

# A raftcfg node: `raftcfg serve` on 7379 (clients) and 7380 (peers).
FROM gcr.io/distroless/cc-debian12:nonroot AS raftcfg
COPY --from=builder /usr/local/bin/raftcfg /usr/local/bin/raftcfg
# Owned by the runtime user, so a fresh volume there is writable.
COPY --from=builder --chown=65532:65532 /out/var/lib/raftcfg /var/lib/raftcfg
ENV RAFTCFG_DATA_DIR=/var/lib/raftcfg
USER 65532:65532
VOLUME /var/lib/raftcfg
EXPOSE 7379 7380
ENTRYPOINT ["/usr/local/bin/raftcfg"]
CMD ["serve"]

# The Kubernetes operator; metrics and health on 8080.
FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=builder /usr/local/bin/raftcfg-operator /usr/local/bin/raftcfg-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/raftcfg-operator"]
