#!/usr/bin/env bash
# Builds every image the cluster runs, under the names and tags the chart
# and the operator use by default (lib.sh), into one docker-archive,
# $IMAGES_TAR, for `ctr images import`:
#   - chat, voice, operator: docker/*.Dockerfile from this checkout
#     (e2e/images/build-images.sh; release binaries built here, in a target
#     folder under ~/.cache so that later builds are incremental);
#   - Redis and Ollama, the images of the parts the operator deploys:
#     e2e/cluster/images/*.Dockerfile, from Debian's redis-server and the
#     Ollama that scripts/fetch-llm.sh builds;
#   - the pause image and CoreDNS, from e2e/cluster/build-tools.sh.
# Nothing is rebuilt when the binaries and Dockerfiles are unchanged (a
# digest of them is kept beside the archive). Otherwise it runs a dockerd of
# its own (socket under $RUN, no bridge, no iptables rules or sysctls;
# builds use the host network) and stops it before it returns.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
cd "$here/../.."
mkdir -p "$(dirname "$IMAGES_TAR")"
started=$(date +%s)

log "release binaries (cargo build --release)"
native="$(FETCH_ONLY=native ./scripts/fetch-models.sh)"
export CARGO_TARGET_DIR="${IMAGES_TARGET_DIR:-$CACHE/target-images}"
ORT_LIB_LOCATION="$native" ORT_PREFER_DYNAMIC_LINK=1 LIBRARY_PATH="$native" \
  cargo build --release --locked -p voicechat-chat -p voicechat-voice -p voicechat-operator >&2
llm_env="$(./scripts/fetch-llm.sh)"
eval "$llm_env"
"$here/build-tools.sh"

key="$(
  {
    sha256sum "$CARGO_TARGET_DIR"/release/voicechat-{chat,voice,operator} "$OLLAMA_BIN" \
      "$native"/libonnxruntime.so* "$native/libvosk.so" \
      "$TOOLS_BIN/pause" "$TOOLS_BIN/coredns" docker/*.Dockerfile e2e/cluster/images/*.Dockerfile \
      e2e/images/build-images.sh e2e/images/make-base-image.sh | awk '{print $1}'
    echo "$CHAT_IMAGE $VOICE_IMAGE $OPERATOR_IMAGE $REDIS_IMAGE $OLLAMA_IMAGE $PAUSE_IMAGE $COREDNS_IMAGE"
  } | sha256sum | cut -c1-16
)"
if [ -s "$IMAGES_TAR" ] && [ "$(cat "$IMAGES_TAR.key" 2>/dev/null)" = "$key" ]; then
  log "images unchanged ($key): $IMAGES_TAR"
  exit 0
fi

# A dockerd of our own; its data (and so its layer cache) under ~/.cache.
docker="$(command -v /usr/bin/docker || command -v docker)"
command -v dockerd >/dev/null || { echo "dockerd is missing (apt-get install docker.io)" >&2; exit 1; }
export DOCKER_HOST="unix://$RUN/docker.sock" DOCKER="$docker" DOCKER_BUILDKIT=1 DOCKER_BUILD_NETWORK=host
claim_cluster_dir
mkdir -p "$RUN"
stop_dockerd() { stop dockerd 30; }
trap stop_dockerd EXIT
start dockerd dockerd --host="$DOCKER_HOST" --data-root="$CACHE/docker-data" \
  --exec-root="$RUN/docker-exec" --pidfile="$RUN/docker.pid" \
  --bridge=none --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false
WAIT_LOG=dockerd wait_for dockerd 60 "$docker" version

runtime="$(./e2e/images/make-base-image.sh)"
IMAGES_CHECK=0 RUNTIME_IMAGE="$runtime" ./e2e/images/build-images.sh >&2

build() { # Dockerfile image context
  "$docker" build --quiet --network=host --build-arg RUNTIME_IMAGE="$runtime" \
    -f "$1" -t "$2" "$3" >/dev/null
  log "built $2"
}
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"; stop_dockerd' EXIT
mkdir -p "$ctx/redis" "$ctx/ollama" "$ctx/pause" "$ctx/coredns"
build e2e/cluster/images/redis.Dockerfile "$REDIS_IMAGE" "$ctx/redis"
cp "$OLLAMA_BIN" "$ctx/ollama/ollama"
build e2e/cluster/images/ollama.Dockerfile "$OLLAMA_IMAGE" "$ctx/ollama"
cp "$TOOLS_BIN/pause" "$ctx/pause/bin"
build e2e/cluster/images/static.Dockerfile "$PAUSE_IMAGE" "$ctx/pause"
cp "$TOOLS_BIN/coredns" "$ctx/coredns/bin"
build e2e/cluster/images/static.Dockerfile "$COREDNS_IMAGE" "$ctx/coredns"

"$docker" save -o "$IMAGES_TAR.tmp" "$CHAT_IMAGE" "$VOICE_IMAGE" "$OPERATOR_IMAGE" \
  "$REDIS_IMAGE" "$OLLAMA_IMAGE" "$PAUSE_IMAGE" "$COREDNS_IMAGE"
mv "$IMAGES_TAR.tmp" "$IMAGES_TAR"
echo "$key" >"$IMAGES_TAR.key"
log "images built in $(($(date +%s) - started)) s: $IMAGES_TAR ($(du -h "$IMAGES_TAR" | cut -f1))"
