#!/usr/bin/env bash
# Runs the stack locally, without Kubernetes: Redis, the voice service with
# real models, and the chat service talking to the LLM server at LLM_URL
# (Ollama at 127.0.0.1:11434 unless told otherwise). Prints the URLs and a
# demo token; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
echo "==> models for the voice service"
./scripts/fetch-models.sh >/dev/null
source "${VOICECHAT_CACHE:-$HOME/.cache/voicechat}/env.sh"

state=".cache/local"
mkdir -p "$state/redis"
chmod 700 "$state"
redis_port="${REDIS_PORT:-6390}"
chat_port="${CHAT_PORT:-8007}"
voice_port="${VOICE_PORT:-8006}"
export LLM_URL="${LLM_URL:-http://127.0.0.1:11434}"
export LLM_MODEL="${LLM_MODEL:-gemma3:270m}"

if [ ! -s "$state/jwt-secret" ]; then
  # 48 random bytes, hex: well above the 32-byte HS256 minimum.
  head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$state/jwt-secret"
  chmod 600 "$state/jwt-secret"
fi
export JWT_SECRET_FILE="$PWD/$state/jwt-secret"

echo "==> building the services (release; the first build compiles whisper.cpp and espeak-ng)"
cargo build --release --locked -p voicechat-chat -p voicechat-voice

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "==> stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

echo "==> starting redis-server on 127.0.0.1:$redis_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$PWD/$state/redis" \
  --appendonly yes --save "" --daemonize no >"$state/redis.log" 2>&1 &
pids+=($!)

export REDIS_URL="redis://127.0.0.1:$redis_port"
export CHAT_PORT="$chat_port" CHAT_BIND="${CHAT_BIND:-127.0.0.1}" LOG_FORMAT="${LOG_FORMAT:-text}"
[ -d web ] && export CHAT_WEB_DIR="${CHAT_WEB_DIR:-$PWD/web}"
./target/release/voicechat-chat &
pids+=($!)
VOICE_PORT="$voice_port" VOICE_BIND="${VOICE_BIND:-127.0.0.1}" ./target/release/voicechat-voice &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$chat_port/livez" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "==> waiting for the voice models to load"
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$voice_port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
token="$(./target/release/voicechat-chat mint-token --user demo --ttl 86400)"
llm_state="$(curl -fsS "http://127.0.0.1:$chat_port/health" | sed -E 's/.*"llm":\{"status":"([a-z]+)".*/\1/')"

cat <<MSG

  chat service   http://127.0.0.1:$chat_port   (health: /health, metrics: /metrics)
  WebSocket      ws://127.0.0.1:$chat_port/ws/chat?token=\$TOKEN
  voice service  http://127.0.0.1:$voice_port   (voices: /api/v1/voices, OpenAI API: /v1/audio/*)
  LLM            $LLM_URL model $LLM_MODEL: $llm_state
  demo token     (user "demo", 24 h)
export TOKEN=$token

  try:
  curl -N -H "Authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
       -d '{"message":"Hello!"}' http://127.0.0.1:$chat_port/api/v1/chat
  curl -H "Authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
       -d '{"text":"Hello from the voice service."}' http://127.0.0.1:$voice_port/api/v1/tts -o hello.wav
  curl -H "Authorization: Bearer \$TOKEN" -H 'content-type: audio/wav' \\
       --data-binary @hello.wav http://127.0.0.1:$voice_port/api/v1/stt

MSG
if [ "$llm_state" != "connected" ]; then
  echo "  note: no LLM server answers at $LLM_URL: chat replies will be errors until one runs"
  echo "        (start Ollama with 'ollama serve' and 'ollama pull $LLM_MODEL', or set LLM_URL/LLM_BACKEND)"
fi
echo "  Ctrl-C stops everything."
wait -n "${pids[@]}"
