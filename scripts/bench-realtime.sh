#!/usr/bin/env bash
# Realtime voice latency, as a user hears it: a scripted client (the
# official openai Python client) speaks a question into the chat service's
# /v1/realtime in real time, and this measures the end of the user's speech
# to the answer's first audio over BENCH_TURNS (20) turns, p50 and p95, with
# the breakdown: VAD end detection (the silence window), speech-to-text of
# the turn, the LLM's first token and first sentence, the voice service's
# first audio, and transport. Then BENCH_IDLE_SESSIONS (200) idle sessions
# at once and the chat service's memory per session.
#
# Release builds of chat and voice, the local CPU models (Whisper tiny.en
# q8_0, Piper joe-medium), Ollama with SmolLM2-135M-Instruct, Redis, all on
# this machine. Not part of scripts/test.sh: timing on a shared 2-core
# machine is too noisy for a gate. Run it with nothing else running.
#   scripts/bench-realtime.sh
#   BENCH_TURNS=40 BENCH_SILENCE_MS=300 scripts/bench-realtime.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}"
phase() { echo "==> $* ($(date +%T))" >&2; }

source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
phase "models, the LLM and release builds"
./scripts/fetch-models.sh >/dev/null
# shellcheck disable=SC1091
source "$cache/env.sh"
eval "$(./scripts/fetch-llm.sh)"
export LLM_MODEL="${LLM_MODEL:-smollm2:135m-instruct-q4_1}"
cargo build --release --locked -p voicechat-chat -p voicechat-voice
venv="$cache/venv-clients-openai3.57.0-websockets15.0.1-wyoming1.10.2"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import openai, websockets' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet openai==3.57.0 websockets==15.0.1 wyoming==1.10.2
fi

state="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_port="$(free_port)"; voice_port="$(free_port)"; chat_port="$(free_port)"; ollama_port="$(free_port)"

phase "starting Redis, Ollama, voice and chat"
redis-server --port "$redis_port" --save '' --appendonly no >"$state/redis.log" 2>&1 &
pids+=($!)
source scripts/lib/ollama.sh
start_ollama "$ollama_port" "$state/ollama.log"
pids+=("$OLLAMA_PID")
head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$state/jwt"
export JWT_SECRET_FILE="$state/jwt" LOG_FORMAT=text REDIS_URL="redis://127.0.0.1:$redis_port"
VOICE_PORT="$voice_port" VOICE_BIND=127.0.0.1 WYOMING_PORT=0 VOICE_CACHE=false \
  target/release/voicechat-voice >"$state/voice.log" 2>&1 &
pids+=($!)
CHAT_PORT="$chat_port" CHAT_BIND=127.0.0.1 LLM_URL="http://$OLLAMA_HOST" \
  VOICE_URL="http://127.0.0.1:$voice_port" CHAT_RATE_LIMIT_PER_MINUTE=100000 \
  target/release/voicechat-chat >"$state/chat.log" 2>&1 &
chat_pid=$!
pids+=("$chat_pid")
for _ in $(seq 1 600); do
  curl -fsS "http://127.0.0.1:$voice_port/readyz" >/dev/null 2>&1 && curl -fsS "http://127.0.0.1:$chat_port/livez" >/dev/null 2>&1 && break
  sleep 0.2
done
token="$(target/release/voicechat-chat mint-token --user bench --ttl 3600)"
# One answer first, so that the model is loaded and warm.
curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"message":"Hello!"}' "http://127.0.0.1:$chat_port/api/v1/chat"

phase "realtime turns and idle sessions"
"$venv/bin/python" scripts/lib/bench_realtime.py \
  "http://127.0.0.1:$chat_port" "http://127.0.0.1:$voice_port" "$token" "$chat_pid"
