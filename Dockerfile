# syntax=docker/dockerfile:1
# Build: docker build -t tessera .
# Run:   docker run -d -p 8080:8080 -v tessera-data:/data tessera

FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc make perl pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, in their own layer: rebuilt only when the lock changes.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY src ./src
COPY migrations ./migrations
COPY config ./config
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin tessera \
 && mkdir -p /data \
 && chown tessera:tessera /data
COPY --from=build /src/target/release/tessera /usr/local/bin/tessera
ENV TESSERA__SERVER__BIND=0.0.0.0:8080 \
    TESSERA__SERVER__DATA_DIR=/data \
    TESSERA__DATABASE__URL=sqlite:///data/tessera.db
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/tessera", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/tessera"]
CMD ["serve"]
