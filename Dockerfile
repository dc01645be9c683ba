# syntax=docker/dockerfile:1
# Build: docker build -t tessera .
# Run:   docker run -d -p 8080:8080 -v tessera-data:/data tessera

FROM rust:1.95-slim-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates gcc make perl pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, in their own layer: rebuilt only when the lock changes.
# Cargo.toml names a bench target, so its file must exist (it is not built).
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo ./.cargo
COPY crates ./crates
RUN mkdir src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs benches/crypto.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY src ./src
COPY migrations ./migrations
COPY config ./config
RUN touch src/main.rs src/lib.rs && cargo build --release --locked
# The runtime's whole file system, distroless-style: the binary, the few
# glibc libraries it links (SQLite, libpq and OpenSSL are bundled in it), CA
# certificates, and passwd/group entries for the tessera user. /data, the
# only place that user may write, comes separately, with its owner.
RUN mkdir -p /rootfs/usr/local/bin /rootfs/etc/ssl/certs /volume/data \
 && cp target/release/tessera /rootfs/usr/local/bin/ \
 && ldd target/release/tessera | grep -o '/[^ ]*' | xargs cp --parents -L -t /rootfs/ \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && echo 'root:x:0:0:root:/root:/sbin/nologin' > /rootfs/etc/passwd \
 && echo 'tessera:x:10001:10001:tessera:/data:/sbin/nologin' >> /rootfs/etc/passwd \
 && printf 'root:x:0:\ntessera:x:10001:\n' > /rootfs/etc/group \
 && echo 'hosts: files dns' > /rootfs/etc/nsswitch.conf

FROM scratch
COPY --from=build /rootfs/ /
COPY --from=build --chown=10001:10001 /volume/ /
ENV TESSERA__SERVER__BIND=0.0.0.0:8080 \
    TESSERA__SERVER__DATA_DIR=/data \
    TESSERA__DATABASE__URL=sqlite:///data/tessera.db \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/tessera", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/tessera"]
CMD ["serve"]
