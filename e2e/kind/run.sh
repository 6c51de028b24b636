#!/usr/bin/env bash
# The cluster tests (e2e/cluster/run-tests.sh) on kind + Docker, where the
# internet is reachable (the kind node image, the rust/debian base images,
# and the upstream Redis and Ollama images are pulled). One driver, two ways
# to get a cluster: e2e/cluster/up.sh makes one offline on this project's
# machines; this script makes it with kind. CI elsewhere runs it
# (.github/workflows/kind-e2e.yaml).
#
#   e2e/kind/run.sh            # KIND_CLUSTER=voicechat-e2e KEEP_CLUSTER=1 to keep it
#
# Steps: create the cluster; build the three CPU images from the
# Dockerfiles and load them under the names the chart and the operator use
# by default; copy the voice models onto the node (the tests make a PVC of
# them); fetch the small instruct LLM; serve the models mirror on the kind
# network's gateway (e2e/cluster/mirror.py, as e2e/cluster/up.sh does); run
# the tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
source e2e/cluster/lib.sh
cluster="${KIND_CLUSTER:-voicechat-e2e}"

finish() {
  status=$?
  [ -z "${mirror_pid:-}" ] || kill "$mirror_pid" 2>/dev/null || true
  [ -z "${mirror_root:-}" ] || rm -rf "$mirror_root"
  [ -n "${KEEP_CLUSTER:-}" ] || kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  exit $status
}
trap finish EXIT

for tool in kind kubectl helm docker python3 curl; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

echo "==> kind cluster $cluster"
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 180s

echo "==> images"
for name in chat voice operator; do
  image_var="$(tr '[:lower:]' '[:upper:]' <<<"$name")_IMAGE"
  docker build -f "docker/$name.Dockerfile" -t "${!image_var}" .
  kind load docker-image --name "$cluster" "${!image_var}"
done

echo "==> models on the node"
./scripts/fetch-models.sh >/dev/null
models="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}/models-v1"
docker exec "$cluster-control-plane" mkdir -p /var/local/voicechat-models
docker cp "$models/." "$cluster-control-plane:/var/local/voicechat-models/"
docker exec "$cluster-control-plane" chmod -R a+rX /var/local/voicechat-models

echo "==> the instruct LLM (PyPI), the models mirror and the tests"
llm_env="$(SKIP_OLLAMA_BUILD=1 ./scripts/fetch-llm.sh)"
eval "$llm_env"
# The host as the kind node's containers see it: the kind network's gateway.
gateway="$(docker network inspect kind -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' | tr ' ' '\n' | grep -m1 '\.')"
mirror_root="$(mktemp -d)"
mkdir -p "$mirror_root/voicechat/whisper"
python3 e2e/cluster/mirror.py populate "$mirror_root" common/models-catalog.json "$models"/piper/* "$LLM_INSTRUCT_GGUF"
for f in "$models"/whisper/ggml-*.bin; do ln -sf "$f" "$mirror_root/voicechat/whisper/"; done
python3 e2e/cluster/mirror.py serve "$mirror_root" "$gateway" 8090 2>"$mirror_root.log" &
mirror_pid=$!
export VOICECHAT_MODEL_MIRROR="http://$gateway:8090"
VCS_MODELS_NODE_PATH=/var/local/voicechat-models VCS_WHISPER_FILES="$models/whisper" \
  ./e2e/cluster/run-tests.sh
echo "==> kind e2e passed"
