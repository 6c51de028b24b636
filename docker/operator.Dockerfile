# The operator. Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t voicechat/operator .
# Same build arguments as docker/chat.Dockerfile (BUILDER_IMAGE,
# RUNTIME_IMAGE, BINARIES=build|prebuilt).
ARG BUILDER_IMAGE=rust:1.89-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG BINARIES=build

FROM ${BUILDER_IMAGE} AS build
RUN command -v cargo >/dev/null || (apt-get update && apt-get install -y --no-install-recommends curl ca-certificates build-essential pkg-config cmake \
    && curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal)
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p voicechat-operator \
    && install -D -s target/release/voicechat-operator /out/usr/local/bin/voicechat-operator

FROM scratch AS prebuilt
COPY prebuilt/ /out/

FROM ${BINARIES} AS binaries

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="voicechat-operator" \
      org.opencontainers.image.description="VoiceChatStack Kubernetes operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/voicechatstack"
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
    && useradd --system --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin voicechat
COPY --from=binaries /out/ /
USER 65532:65532
ENV RUST_LOG=info OPERATOR_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /livez HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENTRYPOINT ["/usr/local/bin/voicechat-operator"]
CMD ["run"]
