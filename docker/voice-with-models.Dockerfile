# The voice image with models baked in, for clusters that cannot mount or
# download them. The context is a models folder laid out as VOICE_MODELS_DIR
# (piper/, whisper/, vosk/), e.g. ~/.cache/voicechat/models-v1:
#   docker build -f docker/voice-with-models.Dockerfile \
#     --build-arg VOICE_IMAGE=voicechat/voice:0.1.0 -t voicechat/voice-models:0.1.0 \
#     ~/.cache/voicechat/models-v1
ARG VOICE_IMAGE=voicechat/voice:0.1.0
FROM ${VOICE_IMAGE}
COPY --chown=65532:65532 . /models/
