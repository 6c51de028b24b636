#!/usr/bin/env bash
# Runs the cluster tests (e2e/cluster/tests, pytest) against the cluster
# KUBECONFIG points at, with kubectl and helm from PATH: made by
# e2e/cluster/up.sh here, by kind in e2e/kind/run.sh. The clients (pytest,
# the official openai client, websockets, wyoming) live in a venv under ~/.cache.
#   VOICECHAT_MODEL_MIRROR the models mirror pods reach (up.sh prints it; required)
#   VCS_MODELS_NODE_PATH  the voice models folder, as a path on the node (required)
#   VOICECHAT_MODEL_REGISTRY, VCS_REGISTRY_DOCKER_CONFIG  an OCI registry pods reach and a
#                         Docker config with its credentials (up.sh prints both; crane on
#                         PATH); without them the models-from-images tests are skipped
#   VCS_NODE_IS_HOST=1    the node is this machine (e2e/cluster): also checks
#                         that a pod reaches a host server through the node IP
# Extra arguments go to pytest (e.g. -k redis).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}"
: "${VCS_MODELS_NODE_PATH:?the models folder on the node}" "${VOICECHAT_MODEL_MIRROR:?the models mirror (e2e/cluster/up.sh prints it)}"
venv="$cache/venv-cluster-e2e-3"
if ! "$venv/bin/python" -c 'import pytest, openai, websockets, wyoming' 2>/dev/null; then
  echo "==> the cluster tests' clients (venv $venv)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet pytest==8.3.5 openai==3.57.0 websockets==15.0.1 wyoming==1.10.2
fi
for tool in kubectl helm; do
  command -v "$tool" >/dev/null || { echo "$tool is not on PATH" >&2; exit 1; }
done
export HELM_BIN="${HELM_BIN:-$(command -v helm)}"
export VCS_DUMP_DIR="${VCS_DUMP_DIR:-$here/../../target/cluster-e2e}"
cd "$here/tests"
exec "$venv/bin/python" -m pytest -p no:cacheprovider -v -rs --durations=0 "$@" .
