# Sourced: start_ollama PORT LOGFILE starts the Ollama server built by
# scripts/fetch-llm.sh (eval its output first: OLLAMA_BIN, LLM_MODELFILE) on
# 127.0.0.1:PORT in the background, waits until it answers, and creates the
# model $LLM_MODEL from the Modelfile (a quick copy once the blob is stored).
# Sets OLLAMA_PID. Models live under the voicechat cache, not ~/.ollama.

start_ollama() {
  local port="$1" logfile="$2"
  export OLLAMA_HOST="127.0.0.1:$port"
  export OLLAMA_MODELS="${OLLAMA_MODELS:-${VOICECHAT_CACHE:-$HOME/.cache/voicechat}/ollama-models}"
  # The chat service keeps one conversation per socket; a model kept loaded
  # answers the next message without a reload.
  export OLLAMA_KEEP_ALIVE="${OLLAMA_KEEP_ALIVE:-30m}"
  mkdir -p "$OLLAMA_MODELS"
  "$OLLAMA_BIN" serve >"$logfile" 2>&1 &
  OLLAMA_PID=$!
  local i
  for i in $(seq 1 150); do
    curl -fsS "http://$OLLAMA_HOST/api/version" >/dev/null 2>&1 && break
    if ! kill -0 "$OLLAMA_PID" 2>/dev/null; then
      echo "Ollama exited at start; its log ($logfile):" >&2
      tail -n 20 "$logfile" >&2
      return 1
    fi
    sleep 0.2
  done
  "$OLLAMA_BIN" create "$LLM_MODEL" -f "$LLM_MODELFILE" >>"$logfile" 2>&1 || {
    echo "ollama create $LLM_MODEL failed; its log ($logfile):" >&2
    tail -n 20 "$logfile" >&2
    return 1
  }
}
