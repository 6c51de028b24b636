# The chat service. Build from the repository root:
#   docker build -f docker/chat.Dockerfile -t voicechat/chat .
# Base images are build arguments, so they can be swapped for a mirror or a
# locally made base (see e2e/images/build-images.sh). BINARIES=prebuilt takes
# the binary from the context's prebuilt/ folder instead of compiling (the
# offline path: a context holding only prebuilt/usr/local/bin/voicechat-chat).
ARG BUILDER_IMAGE=rust:1.89-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG BINARIES=build

FROM ${BUILDER_IMAGE} AS build
RUN command -v cargo >/dev/null || (apt-get update && apt-get install -y --no-install-recommends curl ca-certificates build-essential pkg-config \
    && curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal)
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p voicechat-chat \
    && install -D -s target/release/voicechat-chat /out/usr/local/bin/voicechat-chat

FROM scratch AS prebuilt
COPY prebuilt/ /out/

FROM ${BINARIES} AS binaries

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="voicechat-chat" \
      org.opencontainers.image.description="VoiceChatStack chat service: WebSocket and REST chat with an LLM, history in Redis" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/voicechatstack"
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
    && useradd --system --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin voicechat
COPY --from=binaries /out/ /
# Nothing is written at run time: the root filesystem can be read-only.
USER 65532:65532
ENV RUST_LOG=info
EXPOSE 8007
# bash's /dev/tcp: no curl needed in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8007 && printf 'GET /livez HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENTRYPOINT ["/usr/local/bin/voicechat-chat"]
