#!/usr/bin/env bash
# Installs the system packages and toolchain the build and tests need, on
# Debian/Ubuntu. Safe to re-run: installs only what is missing.
set -euo pipefail

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v cmake >/dev/null || need_apt+=(cmake)
command -v curl >/dev/null || need_apt+=(curl ca-certificates)
command -v unzip >/dev/null || need_apt+=(unzip)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
python3 -c 'import ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# Voice service: whisper.cpp and espeak-ng are built from source by their
# crates (cmake, clang for bindgen); espeak-ng's build needs libsonic (else
# it tries to clone it); espeak-ng itself is the fallback voice; sox is
# used by the tools and by people checking audio.
command -v clang >/dev/null || need_apt+=(clang libclang-dev)
[ -e /usr/include/sonic.h ] || need_apt+=(libsonic-dev)
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng espeak-ng-data)
command -v sox >/dev/null || need_apt+=(sox)
# ffmpeg/ffprobe: the tests decode and probe every speech format the
# service sends (a decoder nobody here wrote).
command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
# The local LLM: Ollama is built from its Go module with cgo; the module zip
# leaves out llama.cpp's vendor/ headers, which come from Debian (nlohmann
# JSON, stb) and PyPI (miniaudio, in scripts/fetch-llm.sh).
command -v g++ >/dev/null || need_apt+=(g++)
[ -e /usr/include/nlohmann/json_fwd.hpp ] || need_apt+=(nlohmann-json3-dev)
[ -e /usr/include/stb/stb_image.h ] || need_apt+=(libstb-dev)
# The browser test (INSTALL_BROWSER=1, set by scripts/test.sh): Debian's
# Chromium driven by playwright-core from the npm registry.
if [ "${INSTALL_BROWSER:-0}" = 1 ]; then
  command -v chromium >/dev/null || need_apt+=(chromium)
  command -v node >/dev/null || need_apt+=(nodejs)
  command -v npm >/dev/null || need_apt+=(npm)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "==> apt-get install ${need_apt[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    # Debian's cargo is too old for edition 2024; rustup is the upstream way.
    echo "==> installing Rust with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
