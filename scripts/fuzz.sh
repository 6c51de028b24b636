#!/usr/bin/env bash
# Fuzzes the parsers that take untrusted input, each for a bounded time
# (FUZZ_SECONDS, default 60 per target), with cargo-fuzz (libFuzzer and
# AddressSanitizer, so it needs a nightly toolchain):
#   wav_decode   WAV decoding, resampling (voice/src/audio)
#   audio_decode every upload container and codec (voice/src/audio/decode.rs)
#   ws_message   the chat WebSocket's client messages (chat/src/protocol.rs)
#   realtime_event the Realtime API's client events, session updates and
#                appended audio (common/src/realtime, chat/src/realtime)
#   jwt_headers  Authorization / WebSocket subprotocol parsing and JWT checks
# Seeds are in fuzz/seeds/<target>; the growing corpus stays in
# fuzz/corpus/<target> (not committed). A finding stops the run: the input
# is in fuzz/artifacts/<target>/, and `cargo +nightly fuzz run <target>
# <file>` replays it. Prints one line per target.
#
#   scripts/fuzz.sh                 all targets, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh wav_decode
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
seconds="${FUZZ_SECONDS:-60}"
CARGO_FUZZ_VERSION=0.13.2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(wav_decode audio_decode ws_message realtime_event jwt_headers)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "==> installing the nightly toolchain (cargo-fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

cd fuzz
for target in "${targets[@]}"; do
  echo "==> building $target"
  cargo +nightly fuzz build "$target" >/dev/null
done
summary=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  echo "==> fuzzing $target for $seconds s"
  log="$(mktemp)"
  if cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      >"$log" 2>&1; then
    runs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')"
    cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+' || echo '?')"
    summary+=("$(printf '%-12s clean: %s runs in %s s, coverage %s edges, corpus %s inputs' \
      "$target" "$runs" "$seconds" "$cov" "$(ls "corpus/$target" | wc -l)")")
    rm -f "$log"
  else
    tail -n 40 "$log"
    echo "$target: FINDING (log: $log; inputs in fuzz/artifacts/$target/)" >&2
    exit 1
  fi
done
echo
printf '%s\n' "${summary[@]}"
