#!/usr/bin/env bash
# End to end on a real cluster: kind + Docker, with internet access (the kind
# node image, rust/debian base images, Ollama's image and model are pulled).
# It cannot run on the project's build machines (no registry access); CI runs
# it (.github/workflows/kind-e2e.yaml).
#
#   e2e/kind/run.sh            # KIND_CLUSTER=voicechat-e2e KEEP_CLUSTER=1 to keep it
#
# Steps: create the cluster; build the three CPU images and load them; put
# the voice models on the node and expose them as a PVC; helm install the
# operator; apply crds/examples/minimal.yaml plus a stack with models and
# Ollama; wait for Ready; pull the LLM model; then, through port-forwards,
# a WebSocket chat with the real LLM and a TTS -> STT round trip. On failure
# it dumps stacks, events, pods and logs.
set -euo pipefail
cd "$(dirname "$0")/../.."
cluster="${KIND_CLUSTER:-voicechat-e2e}"
ns=voicechat-e2e
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
work="$(mktemp -d)"
pids=()

dump() {
  echo "==== failure: cluster state ====" >&2
  kubectl get vcs -A -o yaml >&2 || true
  kubectl get events -A --sort-by=.lastTimestamp >&2 || true
  kubectl get pods -A -o wide >&2 || true
  for p in $(kubectl get pods -n "$ns" -o name 2>/dev/null) $(kubectl get pods -n voicechat-system -o name 2>/dev/null); do
    echo "---- logs $p" >&2
    kubectl logs -n "${p%%/*}" "$p" --all-containers --tail=100 >&2 2>/dev/null ||
      kubectl logs -n "$ns" "$p" --all-containers --tail=100 >&2 || true
  done
}
finish() {
  status=$?
  [ $status -ne 0 ] && dump
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -n "${KEEP_CLUSTER:-}" ] || kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  rm -rf "$work"
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
  docker build -f "docker/$name.Dockerfile" -t "voicechat/$name:$version" .
  kind load docker-image --name "$cluster" "voicechat/$name:$version"
done

echo "==> models on the node, as a PVC"
./scripts/fetch-models.sh >/dev/null
models="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}/models-v1"
docker exec "$cluster-control-plane" mkdir -p /var/local/voicechat-models
docker cp "$models/." "$cluster-control-plane:/var/local/voicechat-models/"
docker exec "$cluster-control-plane" chmod -R a+rX /var/local/voicechat-models
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f - <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: voicechat-models}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadOnlyMany]
  storageClassName: manual
  hostPath: {path: /var/local/voicechat-models, type: Directory}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: voicechat-models, namespace: $ns}
spec:
  accessModes: [ReadOnlyMany]
  storageClassName: manual
  volumeName: voicechat-models
  resources: {requests: {storage: 2Gi}}
YAML

echo "==> helm install"
helm upgrade --install voicechat-operator charts/voicechat-operator \
  --namespace voicechat-system --create-namespace --wait --timeout 5m \
  --set image.repository=voicechat/operator --set image.tag="$version" --set image.pullPolicy=Never \
  --set operator.images.chat="voicechat/chat:$version" \
  --set operator.images.voice="voicechat/voice:$version" \
  --set operator.profiles.cpu.whisperModel=ggml-tiny.en.bin

echo "==> stacks"
kubectl apply -n "$ns" -f crds/examples/minimal.yaml
kubectl apply -n "$ns" -f - <<'YAML'
apiVersion: voicechat.dev/v1alpha1
kind: VoiceChatStack
metadata: {name: e2e}
spec:
  voice: {sttProfile: CPU, modelsPvc: voicechat-models}
  ollama: {enabled: true}
  chat: {llm: {model: "gemma3:270m"}}
YAML
kubectl wait -n "$ns" --for=condition=Ready vcs/e2e --timeout=15m
kubectl wait -n "$ns" --for=condition=Ready vcs/demo --timeout=15m
kubectl get vcs -n "$ns"

echo "==> LLM model"
kubectl exec -n "$ns" deploy/e2e-ollama -- ollama pull gemma3:270m

echo "==> port-forwards"
kubectl port-forward -n "$ns" svc/e2e-chat 18007:8007 >/dev/null 2>&1 & pids+=($!)
kubectl port-forward -n "$ns" svc/e2e-voice 18006:8006 >/dev/null 2>&1 & pids+=($!)
sleep 3
secret="$(kubectl get secret -n "$ns" e2e-jwt -o jsonpath='{.data.secret}' | base64 -d)"
python3 -m venv "$work/venv" && "$work/venv/bin/pip" install --quiet websockets==13.1
JWT_SECRET="$secret" "$work/venv/bin/python" e2e/kind/talk.py
echo "==> kind e2e passed"
