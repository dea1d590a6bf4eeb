# Packaging lands with the Helm/packaging issue; this image already runs a broker.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
COPY --from=build /src/target/release/jet /usr/local/bin/jet
VOLUME /data
EXPOSE 9092
ENTRYPOINT ["/usr/local/bin/jet", "--data-dir", "/data"]
