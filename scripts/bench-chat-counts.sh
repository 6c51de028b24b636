#!/usr/bin/env bash
# What one chat message costs the service, in counts that do not drift with
# the machine's load as CPU time does: heap allocations, tokio task polls and
# socket syscalls per message, under the ws_load benchmark (BENCH_CLIENTS
# 100 clients, 20 tokens per answer, scripted LLM, real redis-server).
#
#   scripts/bench-chat-counts.sh                        # this checkout's release build
#   scripts/bench-chat-counts.sh /tmp/chat-before       # another build, for A/B
#
# Needs root, perf and tracefs: the counts are uprobes on the allocator
# (mimalloc's mi_malloc_aligned and mi_zalloc_aligned; mi_realloc_aligned
# apart) and on every instantiation of tokio's task::raw::poll (reached
# through a function pointer, so never inlined away) found in the binary's
# symbols, plus syscall tracepoints, read with `perf stat` over 3 s of the
# load; the messages come from the service's /metrics, read at the start
# and the end of that same window. Uprobes slow the service: the CPU figure
# of a counted run is not comparable to plain runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
[ -f "$HOME/.cache/voicechat/env.sh" ] && source "$HOME/.cache/voicechat/env.sh"

tracefs=/sys/kernel/tracing
[ -d "$tracefs/events" ] || tracefs=/sys/kernel/debug/tracing
if [ "$(id -u)" != 0 ] || ! command -v perf >/dev/null || [ ! -w "$tracefs/uprobe_events" ]; then
  echo "bench-chat-counts: needs root, perf (apt-get install linux-perf) and a writable $tracefs/uprobe_events" >&2
  exit 1
fi

if [ $# -ge 1 ]; then
  binary="$(realpath "$1")"
else
  cargo build --release --locked -p voicechat-chat >&2
  binary="$(realpath target/release/voicechat-chat)"
fi
cargo bench --locked -p voicechat-chat --bench ws_load --no-run >&2
clients="${BENCH_CLIENTS:-100}"

group=vcs_counts
log="$(mktemp)"
stats="$(mktemp)"
window="$(mktemp)"
bench=""
remove_probes() {
  { grep "^p:$group/" "$tracefs/uprobe_events" 2>/dev/null || true; } | cut -d' ' -f1 | sed 's/^p:/-:/' |
    while read -r removal; do echo "$removal" >>"$tracefs/uprobe_events" || true; done
}
finish() {
  local status=$?
  if [ -n "$bench" ] && kill -0 "$bench" 2>/dev/null; then
    kill "$bench" 2>/dev/null || true
    pkill -f "^$binary" 2>/dev/null || true
    pkill -f "/release/deps/ws_load-" 2>/dev/null || true
  fi
  remove_probes
  [ "$status" = 0 ] || { echo "bench-chat-counts: failed; the benchmark's output:" >&2; cat "$log" >&2; }
  rm -f "$log" "$stats" "$window"
}
trap finish EXIT
# Left by a run that was killed outright.
remove_probes

# Uprobes are placed by file offset: the text segment's address minus its offset.
load="$(readelf -lW "$binary" | awk '$1 == "LOAD" && / R E / && !found {print $3, $2; found = 1}')"
delta=$(($(echo "$load" | awk '{print $1}') - $(echo "$load" | awk '{print $2}')))
add_probe() { # name symbol-address
  printf 'p:%s/%s %s:0x%x\n' "$group" "$1" "$binary" $((0x$2 - delta)) >>"$tracefs/uprobe_events"
}
symbol() { # plain (C) symbol name -> address
  nm "$binary" | awk -v name="$1" '$3 == name && !found {print $1; found = 1}'
}
for allocator in malloc zalloc realloc; do
  address="$(symbol "mi_${allocator}_aligned")"
  [ -n "$address" ] || { echo "bench-chat-counts: no mi_${allocator}_aligned in $binary (not built with mimalloc?)" >&2; exit 1; }
  add_probe "$allocator" "$address"
done
n=0
for address in $(nm -C "$binary" | awk '/ tokio::runtime::task::raw::poll$/ {print $1}'); do
  add_probe "poll_$n" "$address"
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "bench-chat-counts: no tokio::runtime::task::raw::poll in $binary" >&2; exit 1; }

BENCH_CHAT_BIN="$binary" BENCH_CLIENTS="$clients" BENCH_MESSAGES="${BENCH_MESSAGES:-600}" \
  cargo bench -q --locked -p voicechat-chat --bench ws_load >"$log" 2>&1 &
bench=$!
pid=""
for _ in $(seq 100); do
  pid="$(pgrep -f "^$binary" | head -n1 || true)"
  [ -n "$pid" ] && break
  sleep 0.2
done
[ -n "$pid" ] || { echo "bench-chat-counts: the service did not start" >&2; exit 1; }
port="$(tr '\0' '\n' <"/proc/$pid/environ" | sed -n 's/^CHAT_PORT=//p')"
metrics="http://127.0.0.1:$port/metrics"
# The solo phase and the connections first: counting starts under full load.
sleep 5
# The counters run while the command runs: the two reads of the service's
# message counter bound the same window.
perf stat -x, -o "$stats" -e "$group:*" \
  -e syscalls:sys_enter_sendto,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait \
  -p "$pid" -- bash -c '
    count() { curl -fsS "$1" | awk '"'"'/^chat_messages_total\{direction="in"\}/ {print $2}'"'"'; }
    first="$(count "$1")"; sleep 3; echo "$first $(count "$1")" >"$2"' _ "$metrics" "$window"
wait "$bench"
python3 - "$stats" "$window" "$clients" <<'EOF'
import sys
stats, window, clients = sys.argv[1:4]
first, last = open(window).read().split()
messages = float(last) - float(first)
counts = {"allocations": 0, "reallocations": 0, "task polls": 0}
for line in open(stats):
    fields = line.strip().split(",")
    if len(fields) < 3 or not fields[0].isdigit():
        continue
    value, event = int(fields[0]), fields[2].split(":")[-1]
    if event in ("malloc", "zalloc"):
        counts["allocations"] += value
    elif event == "realloc":
        counts["reallocations"] += value
    elif event.startswith("poll_"):
        counts["task polls"] += value
    else:
        counts[event.replace("sys_enter_", "")] = value
if messages <= 0:
    sys.exit("bench-chat-counts: no message was counted")
print(f"bench-chat-counts: {messages:.0f} messages counted ({clients} clients, 20 tokens per answer); per message:")
for name, value in counts.items():
    print(f"  {name + ':':<15} {value / messages:7.2f}")
EOF
