#!/usr/bin/env bash
# Runs docker/compose.yaml here with the locally built images (run
# build-images.sh first): Redis from a local Debian image (Docker Hub is
# unreachable), the chat and voice services with the JWT secret from a file
# and the models mounted read-only. Checks both turn healthy, answer /livez,
# report Redis connected on /health, and that a token signed with the file's
# secret is accepted. Ollama (profile "llm") is left out: its image cannot be
# pulled here.
set -euo pipefail
cd "$(dirname "$0")/../.."
docker="${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}"
compose=(docker-compose)
command -v docker-compose >/dev/null || compose=("$docker" compose)
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
base="$(DOCKER="$docker" ./e2e/images/make-base-image.sh)"

if ! "$docker" image inspect voicechat.local/redis:7 >/dev/null 2>&1; then
  echo "==> building a local Redis image on $base"
  # Laid out as the official image: uid 999 owns /data, the volume.
  printf 'FROM %s\nRUN apt-get update && apt-get install -y --no-install-recommends redis-server redis-tools && apt-get clean && rm -rf /var/lib/apt/lists/* && mkdir /data && chown 999:999 /data\nWORKDIR /data\nUSER 999:999\nEXPOSE 6379\n' "$base" |
    DOCKER_BUILDKIT=1 "$docker" build --quiet -t voicechat.local/redis:7 - >/dev/null
fi

work="$(mktemp -d)"
project="vcs-compose-$$"
export REDIS_IMAGE=voicechat.local/redis:7 CHAT_IMAGE="voicechat/chat:$version" VOICE_IMAGE="voicechat/voice:$version"
export VOICE_MODELS="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}/models-v1"
export JWT_SECRET_FILE="$work/jwt_secret" CHAT_PORT=18007 VOICE_PORT=18006
head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$JWT_SECRET_FILE"
chmod 644 "$JWT_SECRET_FILE"
down() {
  "${compose[@]}" -p "$project" -f docker/compose.yaml down -v >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap down EXIT
"${compose[@]}" -p "$project" -f docker/compose.yaml up -d redis chat voice

deadline=$(($(date +%s) + 240))
for svc in chat voice; do
  until [ "$("$docker" inspect -f '{{.State.Health.Status}}' "$("${compose[@]}" -p "$project" -f docker/compose.yaml ps -q "$svc")")" = healthy ]; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
      echo "$svc never turned healthy" >&2
      "${compose[@]}" -p "$project" -f docker/compose.yaml logs --tail 30 >&2
      exit 1
    fi
    sleep 2
  done
  echo "==> $svc healthy"
done
for port in "$CHAT_PORT" "$VOICE_PORT"; do
  health="$(curl -fsS "http://127.0.0.1:$port/health")"
  echo "    :$port /health $health"
  # Redis must be connected; the LLM is absent here (no Ollama image).
  # Every voice engine must have loaded its model from the mount.
  python3 -c '
import json, sys
deps = json.loads(sys.argv[1])["dependencies"]
down = [k for k, v in deps.items() if (k == "redis" or k.startswith("engine:")) and v["status"] != "connected"]
sys.exit(f"not connected: {down}" if down else 0)' "$health" || exit 1
done
# A token signed with the secret file's value is accepted; a wrong one is not.
token="$(python3 - "$JWT_SECRET_FILE" <<'PY'
import base64, hashlib, hmac, json, sys, time
key = open(sys.argv[1], "rb").read().strip()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "compose-test", "exp": int(time.time()) + 300}).encode())
sig = b64(hmac.new(key, head + b"." + body, hashlib.sha256).digest())
print((head + b"." + body + b"." + sig).decode())
PY
)"
code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$VOICE_PORT/api/v1/voices")"
[ "$code" = 200 ] || { echo "a valid token got $code" >&2; exit 1; }
code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${token}x" "http://127.0.0.1:$VOICE_PORT/api/v1/voices")"
[ "$code" = 401 ] || { echo "a bad signature got $code" >&2; exit 1; }
echo "==> compose stack: chat and voice healthy, Redis connected, the file secret verifies tokens"
