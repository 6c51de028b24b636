#!/usr/bin/env bash
# What one chat message costs the service, in counts that do not drift with
# the machine's load as CPU time does: heap allocations, tokio task polls and
# socket syscalls per message, under the ws_load benchmark (100 clients, 20
# tokens per answer, scripted LLM, real redis-server).
#
#   scripts/bench-chat-counts.sh                        # this checkout's release build
#   scripts/bench-chat-counts.sh /tmp/chat-before       # another build, for A/B
#
# Needs root, perf and tracefs: the counts are uprobes on the allocator
# (mimalloc's mi_malloc_aligned) and on every instantiation of tokio's
# Harness::poll found in the binary's symbols, plus syscall tracepoints,
# read with `perf stat` over 3 s of the load; the messages in that same
# window are counted by a uprobe on the function that admits each one
# (`conversation::admission::admit`). Uprobes slow the service: the CPU
# figure the benchmark prints alongside is not comparable to plain runs.
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
cargo bench --locked -p voicechat-chat --bench ws_load --no-run >&2 2>/dev/null

# Uprobes are placed by file offset: the text segment's address minus its offset.
load="$(readelf -lW "$binary" | awk '$1 == "LOAD" && / R E / && !found {print $3, $2; found = 1}')"
delta=$(( $(echo "$load" | awk '{print $1}') - $(echo "$load" | awk '{print $2}') ))
group="vcs_counts_$$"
remove_probes() {
  grep "^p:$group/" "$tracefs/uprobe_events" 2>/dev/null | while read -r line; do
    echo "-:${line#p:}" | cut -d' ' -f1 >>"$tracefs/uprobe_events" || true
  done
}
trap remove_probes EXIT
add_probe() { # name symbol-address
  printf 'p:%s/%s %s:0x%x\n' "$group" "$1" "$binary" $((0x$2 - delta)) >>"$tracefs/uprobe_events"
}
alloc="$(nm "$binary" | awk '$3 == "mi_malloc_aligned" && !found {print $1; found = 1}')"
[ -n "$alloc" ] || { echo "bench-chat-counts: no mi_malloc_aligned in $binary (not built with mimalloc?)" >&2; exit 1; }
add_probe alloc "$alloc"
admit="$(nm -C "$binary" | awk '/ voicechat_chat::conversation::admission::admit$/ && !found {print $1; found = 1}')"
[ -n "$admit" ] || { echo "bench-chat-counts: no conversation::admission::admit in $binary" >&2; exit 1; }
add_probe message "$admit"
n=0
for address in $(nm -C "$binary" | awk '/ tokio::runtime::task::harness::Harness<T,S>::poll$/ {print $1}'); do
  add_probe "poll_$n" "$address"
  n=$((n + 1))
done

log="$(mktemp)"
stats="$(mktemp)"
BENCH_CHAT_BIN="$binary" BENCH_CLIENTS="${BENCH_CLIENTS:-100}" BENCH_MESSAGES="${BENCH_MESSAGES:-600}" \
  cargo bench -q --locked -p voicechat-chat --bench ws_load >"$log" 2>&1 &
bench=$!
pid=""
for _ in $(seq 100); do
  pid="$(pgrep -f "^$binary" | head -n1 || true)"
  [ -n "$pid" ] && break
  sleep 0.2
done
[ -n "$pid" ] || { echo "bench-chat-counts: the service did not start" >&2; cat "$log" >&2; exit 1; }
# The solo phase and the connections first: counting starts under full load.
sleep 5
perf stat -x, -o "$stats" -e "$group:*" \
  -e syscalls:sys_enter_sendto,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait \
  -p "$pid" -- sleep 3
wait "$bench"
python3 - "$stats" <<'EOF'
import sys
counts = {"allocations": 0, "task polls": 0}
messages = 0
for line in open(sys.argv[1]):
    fields = line.strip().split(",")
    if len(fields) < 3 or not fields[0].isdigit():
        continue
    value, event = int(fields[0]), fields[2].split(":")[-1]
    if event == "message":
        messages = value
    elif event == "alloc":
        counts["allocations"] += value
    elif event.startswith("poll_"):
        counts["task polls"] += value
    else:
        counts[event.replace("sys_enter_", "")] = value
if messages == 0:
    sys.exit("bench-chat-counts: no message was admitted while counting")
print(f"bench-chat-counts: {messages} messages counted (100 clients, 20 tokens per answer); per message:")
for name, value in counts.items():
    print(f"  {name + ':':<14} {value / messages:7.2f}")
EOF
