# The voice service, CPU or CUDA from this one file. Build from the
# repository root:
#   docker build -f docker/voice.Dockerfile -t voicechat/voice .
#   docker build -f docker/voice.Dockerfile -t voicechat/voice-cuda \
#     --build-arg BUILDER_IMAGE=nvidia/cuda:12.6.3-devel-ubuntu24.04 \
#     --build-arg RUNTIME_IMAGE=nvidia/cuda:12.6.3-runtime-ubuntu24.04 \
#     --build-arg VOICE_FEATURES=cuda
# The CUDA image differs only in those three arguments (whisper-rs' cuda
# feature, CUDA's compiler in the builder, CUDA's libraries at run time).
#
# The image carries its native libraries (ONNX Runtime for Piper, libvosk,
# espeak-ng's data) and finds them without extra environment. Models are not
# baked in: mount them at /models (VOICE_MODELS_DIR); for air-gapped use,
# docker/voice-with-models.Dockerfile bakes a models folder into a layer on
# top. BINARIES=prebuilt takes prebuilt/ from the context (the binary, and
# usr/local/lib with the native libraries) instead of compiling.
ARG BUILDER_IMAGE=rust:1.89-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG BINARIES=build

FROM ${BUILDER_IMAGE} AS build
ARG VOICE_FEATURES=""
RUN apt-get update && apt-get install -y --no-install-recommends \
      curl ca-certificates build-essential pkg-config cmake clang libclang-dev libsonic-dev \
      python3 python3-pip unzip \
    && rm -rf /var/lib/apt/lists/*
RUN command -v cargo >/dev/null || curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY . .
# The native libraries come from pinned, checksummed PyPI wheels.
RUN native="$(FETCH_ONLY=native VOICECHAT_CACHE=/cache ./scripts/fetch-models.sh)" \
    && ORT_LIB_LOCATION="$native" ORT_PREFER_DYNAMIC_LINK=1 LIBRARY_PATH="$native" \
       cargo build --release --locked -p voicechat-voice ${VOICE_FEATURES:+--features $VOICE_FEATURES} \
    && install -D -s target/release/voicechat-voice /out/usr/local/bin/voicechat-voice \
    && mkdir -p /out/usr/local/lib \
    && cp -a "$native"/libonnxruntime.so* "$native"/libvosk.so /out/usr/local/lib/

FROM scratch AS prebuilt
COPY prebuilt/ /out/

FROM ${BINARIES} AS binaries

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="voicechat-voice" \
      org.opencontainers.image.description="VoiceChatStack voice service: text-to-speech (Piper, espeak-ng) and speech-to-text (Whisper, Vosk), OpenAI-compatible" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/voicechatstack"
# espeak-ng: the fallback voice and Piper's phonemizer data; libsonic: linked
# by espeak-ng; libgomp: ONNX Runtime's threads.
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates espeak-ng espeak-ng-data libsonic0 libgomp1 \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/* \
    && useradd --system --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin voicechat \
    && mkdir -p /models && chown 65532:65532 /models
COPY --from=binaries /out/ /
RUN ldconfig
ENV RUST_LOG=info \
    VOICE_MODELS_DIR=/models \
    PIPER_ESPEAKNG_DATA_DIRECTORY=/usr/lib/x86_64-linux-gnu
USER 65532:65532
EXPOSE 8006 10300
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8006 && printf 'GET /livez HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENTRYPOINT ["/usr/local/bin/voicechat-voice"]
