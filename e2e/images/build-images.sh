#!/usr/bin/env bash
# Builds the CPU images (chat, voice, operator) here, without a registry,
# and checks that each runs as a non-root user on a read-only root
# filesystem and answers /livez (and that Docker's HEALTHCHECK turns
# healthy):
#   - the runtime base is made locally (make-base-image.sh: debootstrap +
#     docker import) unless RUNTIME_IMAGE names one;
#   - the binaries are built on this machine (cargo build --release) and
#     given to the Dockerfiles' `prebuilt` source (BINARIES=prebuilt), since
#     no Rust builder image can be pulled here. With registry access, plain
#     `docker build -f docker/<name>.Dockerfile .` compiles inside the image.
# The CUDA voice image needs nvidia/cuda base images: not buildable here
# (see docker/voice.Dockerfile for its three build arguments).
#
# The images are tagged voicechat/NAME:VERSION and, the name the chart and
# the operator use by default, ghcr.io/voicechatstack/NAME:VERSION.
# IMAGES_CHECK=0 builds without the checks (e2e/cluster/images.sh runs
# them as pods instead); CARGO_TARGET_DIR is honoured, so a cache outside
# the checkout keeps release builds incremental; DOCKER_BUILD_NETWORK=host
# for a dockerd without a bridge.
#
# Needs dockerd running (as root: `dockerd &`). Uses Debian's docker client
# (/usr/bin/docker) when present: its built-in BuildKit skips the unused
# `build` stages.
set -euo pipefail
cd "$(dirname "$0")/../.."
docker="${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}"
export DOCKER="$docker" DOCKER_BUILDKIT=1
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
started=$(date +%s)

runtime="${RUNTIME_IMAGE:-$(./e2e/images/make-base-image.sh)}"
echo "==> runtime base: $runtime"

echo "==> cargo build --release (chat, voice, operator)"
native="$(FETCH_ONLY=native ./scripts/fetch-models.sh)"
models="$(dirname "$native")/models-v1"
./scripts/fetch-models.sh >/dev/null
ORT_LIB_LOCATION="$native" ORT_PREFER_DYNAMIC_LINK=1 LIBRARY_PATH="$native" \
  cargo build --release --locked -p voicechat-chat -p voicechat-voice -p voicechat-operator
target="${CARGO_TARGET_DIR:-target}"

build() { # name binary [lib files...]
  local name="$1" binary="$2"; shift 2
  local ctx
  ctx="$(mktemp -d)"
  # Stripped: the release profile keeps line tables for backtraces.
  install -D -s "$target/release/$binary" "$ctx/prebuilt/usr/local/bin/$binary"
  if [ $# -gt 0 ]; then
    mkdir -p "$ctx/prebuilt/usr/local/lib"
    cp -a "$@" "$ctx/prebuilt/usr/local/lib/"
  fi
  echo "==> docker build voicechat/$name:$version"
  "$docker" build --quiet ${DOCKER_BUILD_NETWORK:+--network="$DOCKER_BUILD_NETWORK"} \
    --build-arg RUNTIME_IMAGE="$runtime" --build-arg BINARIES=prebuilt --build-arg VERSION="$version" \
    -f "docker/$name.Dockerfile" -t "voicechat/$name:$version" \
    -t "ghcr.io/voicechatstack/$name:$version" "$ctx" >/dev/null
  rm -rf "$ctx"
  "$docker" image inspect "voicechat/$name:$version" --format "    {{.Size}} bytes, user {{.Config.User}}" |
    awk '{printf "    %.1f MiB, user %s\n", $1/1048576, $4}'
}
build chat voicechat-chat
build voice voicechat-voice "$native"/libonnxruntime.so* "$native/libvosk.so"
build operator voicechat-operator
if [ "${IMAGES_CHECK:-1}" = 0 ]; then
  echo "==> images built in $(($(date +%s) - started)) s (not checked: IMAGES_CHECK=0)"
  exit 0
fi

# Run each with a read-only root filesystem, as its image's user.
cleanup() { "$docker" rm -f vcs-img-chat vcs-img-voice vcs-img-operator >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
secret="$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n')"
"$docker" run -d --name vcs-img-chat --read-only --tmpfs /tmp -p 127.0.0.1::8007 \
  -e JWT_SECRET="$secret" -e REDIS_URL=redis://127.0.0.1:1 "voicechat/chat:$version" >/dev/null
"$docker" run -d --name vcs-img-voice --read-only --tmpfs /tmp -p 127.0.0.1::8006 \
  -v "$models:/models:ro" -e JWT_SECRET="$secret" -e REDIS_URL=redis://127.0.0.1:1 "voicechat/voice:$version" >/dev/null
# The operator needs an API server to serve; `crd` proves the binary runs.
crd="$("$docker" run --rm --read-only "voicechat/operator:$version" crd)"
grep -q 'kind: CustomResourceDefinition' <<<"$crd"
echo "==> operator image runs (voicechat-operator crd)"

check() { # container port-in-container
  local name="$1" port="$2" hostport deadline
  hostport="$("$docker" port "$name" "$port/tcp" | head -n1 | sed 's/.*://')"
  deadline=$(($(date +%s) + 180))
  until curl -fsS "http://127.0.0.1:$hostport/livez" >/dev/null 2>&1; do
    if [ "$(date +%s)" -gt "$deadline" ] || [ "$("$docker" inspect -f '{{.State.Running}}' "$name")" != true ]; then
      echo "$name: /livez did not answer; its log:" >&2
      "$docker" logs "$name" 2>&1 | tail -n 30 >&2
      exit 1
    fi
    sleep 1
  done
  until [ "$("$docker" inspect -f '{{.State.Health.Status}}' "$name")" = healthy ]; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
      echo "$name: HEALTHCHECK never turned healthy" >&2
      exit 1
    fi
    sleep 2
  done
  echo "==> $name answers /livez on 127.0.0.1:$hostport, runs as uid $("$docker" exec "$name" id -u), health: healthy"
}
check vcs-img-chat 8007
check vcs-img-voice 8006
# Every voice engine loaded its model from the read-only mount.
voice_port="$("$docker" port vcs-img-voice 8006/tcp | head -n1 | sed 's/.*://')"
python3 -c '
import json, sys, urllib.request
deps = json.load(urllib.request.urlopen(sys.argv[1]))["dependencies"]
down = [k for k, v in deps.items() if k.startswith("engine:") and v["status"] != "connected"]
sys.exit(f"voice engines not loaded: {down}" if down else 0)' "http://127.0.0.1:$voice_port/health"
echo "==> voice engines loaded (Piper, espeak-ng, Whisper, Vosk)"
echo "==> images built and checked in $(($(date +%s) - started)) s"
