# syntax=docker/dockerfile:1.7
# Jet, a Kafka-wire-compatible broker:
#   docker build -t jet . && docker run -p 9092:9092 -p 9644:9644 jet
# The build step is the release build CI runs (compat-tests/run.sh: cargo build --release
# --locked), so the binary in the image is the one the tests ran against.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D --strip --mode=0755 target/release/jet /out/jet

FROM debian:bookworm-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="jet" \
      org.opencontainers.image.description="Kafka-wire-compatible streaming broker" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 jet \
    && useradd --system --uid 10001 --gid jet --home-dir /var/lib/jet --shell /usr/sbin/nologin jet \
    && mkdir -p /var/lib/jet \
    && chown jet:jet /var/lib/jet
COPY --from=build /out/jet /usr/local/bin/jet
USER 10001:10001
# As Apache Kafka's image: clients on the host reach `-p 9092:9092` at localhost:9092.
# Set JET_ADVERTISED_LISTENER to the address clients elsewhere use.
ENV JET_DATA_DIR=/var/lib/jet \
    JET_LISTEN=0.0.0.0:9092 \
    JET_ADVERTISED_LISTENER=localhost:9092 \
    JET_ADMIN_LISTEN=0.0.0.0:9644
VOLUME ["/var/lib/jet"]
# Kafka protocol, admin HTTP (/livez, /readyz, /metrics).
EXPOSE 9092 9644
# SIGTERM: stop accepting, finish in-flight requests, flush, exit 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/jet", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/jet"]
