#!/usr/bin/env bash
# The main job: the whole stack on this machine, without Kubernetes. Installs
# what is missing, then starts Redis, a real LLM server (Ollama built from its
# Go module, with SmolLM2-135M-Instruct), the voice service with real models and the
# chat service with the web client at /. Prints the URLs and a demo token;
# Ctrl-C stops everything.
#
#   scripts/run-local.sh             run until Ctrl-C
#   scripts/run-local.sh --smoke     run the scripted conversation (WebSocket
#                                    chat → TTS → STT, timed), then stop
#   scripts/run-local.sh --smoke --browser
#                                    also the headless-Chromium test of the
#                                    web client (screenshot in target/browser/)
#
# Settings (environment, all optional): LLM_URL (use that server instead of
# starting Ollama; LLM_BACKEND=openai for an OpenAI-compatible one),
# LLM_MODEL, CHAT_PORT (8007), VOICE_PORT (8006), WYOMING_PORT (10300, Home
# Assistant's protocol on the voice service; 0: off), REDIS_PORT (6390),
# OLLAMA_PORT (11435, beside a system Ollama on 11434), VOICECHAT_PROFILE
# (release; the test suite uses debug, which it has already built).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
browser=0
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=1 ;;
    --browser) browser=1 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done
[ "$browser" = 0 ] || export INSTALL_BROWSER=1

source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cache="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}"
echo "==> models for the voice service"
./scripts/fetch-models.sh >/dev/null
source "$cache/env.sh"

state=".cache/local"
mkdir -p "$state/redis"
chmod 700 "$state"
redis_port="${REDIS_PORT:-6390}"
chat_port="${CHAT_PORT:-8007}"
voice_port="${VOICE_PORT:-8006}"
wyoming_port="${WYOMING_PORT:-10300}"
ollama_port="${OLLAMA_PORT:-11435}"
export LLM_MODEL="${LLM_MODEL:-smollm2:135m-instruct-q4_1}"
start_llm=0
if [ -z "${LLM_URL:-}" ]; then
  start_llm=1
  echo "==> the LLM: Ollama and $LLM_MODEL (scripts/fetch-llm.sh; the first run builds Ollama, ~4 minutes)"
  eval "$(./scripts/fetch-llm.sh)"
  # gemma-3-270m stays an option: LLM_MODEL=gemma3:270m.
  case "$LLM_MODEL" in gemma3:*) export LLM_MODELFILE="$LLM_GEMMA_MODELFILE" ;; esac
  export LLM_URL="http://127.0.0.1:$ollama_port"
fi

if [ ! -s "$state/jwt-secret" ]; then
  # 48 random bytes, hex: well above the 32-byte HS256 minimum.
  head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$state/jwt-secret"
  chmod 600 "$state/jwt-secret"
fi
export JWT_SECRET_FILE="$PWD/$state/jwt-secret"

profile="${VOICECHAT_PROFILE:-release}"
bins="target/$profile"
# Cargo calls the debug profile "dev"; its output folder is still target/debug.
cargo_profile=(--profile "$profile")
[ "$profile" = debug ] && cargo_profile=(--profile dev)
echo "==> building the services ($profile; the first build compiles whisper.cpp and espeak-ng, several minutes)"
cargo build "${cargo_profile[@]}" --locked -p voicechat-chat -p voicechat-voice
[ "$smoke" = 0 ] || cargo build "${cargo_profile[@]}" --locked -p voicechat-e2e --bin voicechat-smoke

pids=()
cleanup() {
  local status=$?
  trap - INT TERM EXIT
  echo
  echo "==> stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  exit "$status"
}
trap cleanup INT TERM EXIT

echo "==> starting redis-server on 127.0.0.1:$redis_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$PWD/$state/redis" \
  --appendonly yes --save "" --daemonize no >"$state/redis.log" 2>&1 &
pids+=($!)

if [ "$start_llm" = 1 ]; then
  echo "==> starting Ollama on 127.0.0.1:$ollama_port (log: $state/ollama.log)"
  source scripts/lib/ollama.sh
  start_ollama "$ollama_port" "$state/ollama.log"
  pids+=("$OLLAMA_PID")
fi

export REDIS_URL="redis://127.0.0.1:$redis_port"
export LOG_FORMAT="${LOG_FORMAT:-text}"
# The smoke run logs our own crates at debug, so the secrets check below
# covers everything they can say.
[ "$smoke" = 0 ] || export RUST_LOG="${RUST_LOG:-info,voicechat_chat=debug,voicechat_voice=debug,voicechat_common=debug}"
chat_origin="http://127.0.0.1:$chat_port"
CHAT_PORT="$chat_port" CHAT_BIND="${CHAT_BIND:-127.0.0.1}" CHAT_WEB_DIR="$PWD/web" \
  VOICE_URL="http://127.0.0.1:$voice_port" \
  "$bins/voicechat-chat" >"$state/chat.log" 2>&1 &
pids+=($!)
# The web client at the chat service's origin calls the voice service.
VOICE_PORT="$voice_port" VOICE_BIND="${VOICE_BIND:-127.0.0.1}" WYOMING_PORT="$wyoming_port" \
  CORS_ALLOWED_ORIGINS="$chat_origin,http://localhost:$chat_port" \
  "$bins/voicechat-voice" >"$state/voice.log" 2>&1 &
pids+=($!)

wait_for() { # url what tries
  local i
  for i in $(seq 1 "$3"); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "$2 did not come up ($1); logs in $state/" >&2
  return 1
}
wait_for "http://127.0.0.1:$chat_port/livez" "the chat service" 150
echo "==> waiting for the voice models to load"
wait_for "http://127.0.0.1:$voice_port/readyz" "the voice service" 600
token="$("$bins/voicechat-chat" mint-token --user demo --ttl 86400)"
llm_state="$(curl -fsS "http://127.0.0.1:$chat_port/health" | sed -E 's/.*"llm":\{"status":"([a-z]+)".*/\1/')"

cat <<MSG

  web client     $chat_origin/#token=$token
  chat service   $chat_origin   (health: /health, metrics: /metrics, logs: $state/chat.log)
  WebSocket      ws://127.0.0.1:$chat_port/ws/chat?token=\$TOKEN
  Realtime API   ws://127.0.0.1:$chat_port/v1/realtime   (OpenAI's; the official clients with api_key=\$TOKEN, websocket_base_url=ws://127.0.0.1:$chat_port/v1)
  voice service  http://127.0.0.1:$voice_port   (voices: /api/v1/voices, OpenAI API: /v1/audio/*)
  Wyoming        tcp 127.0.0.1:$wyoming_port   (Home Assistant: add the "Wyoming Protocol" integration with this host and port)
  LLM            $LLM_URL model $LLM_MODEL: $llm_state
  demo token     (user "demo", 24 h)
export TOKEN=$token

  try:
  curl -N -H "Authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
       -d '{"message":"Hello!"}' $chat_origin/api/v1/chat
  curl -H "Authorization: Bearer \$TOKEN" -H 'content-type: application/json' \\
       -d '{"text":"Hello from the voice service."}' http://127.0.0.1:$voice_port/api/v1/tts -o hello.wav
  curl -H "Authorization: Bearer \$TOKEN" -H 'content-type: audio/wav' \\
       --data-binary @hello.wav http://127.0.0.1:$voice_port/api/v1/stt

MSG
if [ "$llm_state" != "connected" ]; then
  echo "  note: no LLM server answers at $LLM_URL: chat replies will be errors until one runs"
fi

if [ "$smoke" = 1 ]; then
  export CHAT_URL="$chat_origin" VOICE_URL="http://127.0.0.1:$voice_port" TOKEN="$token"
  echo "==> smoke conversation"
  "$bins/voicechat-smoke"
  if [ "$wyoming_port" != 0 ]; then
    echo "==> Wyoming answers describe"
    exec 3<>"/dev/tcp/127.0.0.1/$wyoming_port"
    printf '{"type":"describe"}\n' >&3
    IFS= read -r -t 10 header <&3 || true
    exec 3<&- 3>&-
    case "$header" in
      *'"type":"info"'*) echo "    $header" ;;
      *) echo "Wyoming on port $wyoming_port answered describe with: ${header:-nothing}" >&2; exit 1 ;;
    esac
  fi
  if [ "$browser" = 1 ]; then
    echo "==> browser test (headless Chromium)"
    playwright="$cache/node-playwright-core-1.65.1"
    if [ ! -d "$playwright/node_modules/playwright-core" ]; then
      mkdir -p "$playwright"
      npm install --prefix "$playwright" --no-audit --no-fund --silent playwright-core@1.65.1
    fi
    NODE_PATH="$playwright/node_modules" SCREENSHOT="target/browser/chat-page.png" \
      node e2e/browser/chat-page.test.cjs
  fi
  # Secrets never reach a log: after a full run, no log of any part holds
  # the JWT secret, the demo token or its signature.
  echo "==> logs hold no secrets"
  secret="$(cat "$JWT_SECRET_FILE")"
  leaked=0
  for needle in "$secret" "$token" "${token##*.}"; do
    if grep -rlF -- "$needle" "$state"/*.log; then leaked=1; fi
  done
  if [ "$leaked" = 1 ]; then
    echo "a secret or token was written to the logs above" >&2
    exit 1
  fi
  echo "  $(cat "$state"/*.log | wc -l) log lines checked: no JWT secret, no token"
  exit 0
fi
echo "  Ctrl-C stops everything."
wait -n "${pids[@]}"
