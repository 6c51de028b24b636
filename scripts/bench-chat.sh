#!/usr/bin/env bash
# The chat WebSocket benchmark at 1,000 and 10,000 concurrent clients
# (BENCH_CLIENT_COUNTS to change), each sending BENCH_MESSAGES (5) messages
# answered with BENCH_TOKENS (20) tokens by a scripted LLM, history in a real
# redis-server. Each client takes a file descriptor in the benchmark and one
# in the service (requests to the LLM are capped by
# LLM_MAX_CONCURRENT_REQUESTS, 256), so the limit is raised first: to 65,536
# where allowed (root), else to the hard limit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
hard="$(ulimit -n)"
counts="${BENCH_CLIENT_COUNTS:-1000 10000}"
for n in $counts; do
  if [ "$hard" != unlimited ] && [ $((n + 1000)) -gt "$hard" ]; then
    echo "skipping $n clients: the file limit is $hard (raise it in /etc/security/limits.conf)" >&2
    continue
  fi
  echo "==> $n clients (file limit $(ulimit -n))"
  BENCH_CLIENTS="$n" BENCH_MESSAGES="${BENCH_MESSAGES:-5}" BENCH_TOKENS="${BENCH_TOKENS:-20}" \
    cargo bench --locked -p voicechat-chat --bench ws_load
done
