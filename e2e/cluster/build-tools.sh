#!/usr/bin/env bash
# Builds what a node needs beyond e2e/build-k8s.sh's Kubernetes binaries:
# CoreDNS and crictl from their Go modules, and the pause container's binary
# (gcc -static of build/pause/linux/pause.c from the k8s.io/kubernetes
# module). Cached under ~/.cache keyed by version; a second run does nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/lib.sh"
cache="$CACHE"
mkdir -p "$TOOLS_BIN"
[ -x "$TOOLS_BIN/coredns" ] && [ -x "$TOOLS_BIN/crictl" ] && [ -x "$TOOLS_BIN/pause" ] && exit 0
source "$here/../../scripts/lib/go-toolchain.sh"

if [ ! -x "$TOOLS_BIN/coredns" ]; then
  t0=$(date +%s)
  CGO_ENABLED=0 GOBIN="$TOOLS_BIN" go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION" >&2
  log "built coredns $COREDNS_VERSION in $(($(date +%s) - t0)) s"
fi
if [ ! -x "$TOOLS_BIN/crictl" ]; then
  t0=$(date +%s)
  CGO_ENABLED=0 GOBIN="$TOOLS_BIN" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" >&2
  log "built crictl $CRICTL_VERSION in $(($(date +%s) - t0)) s"
fi
if [ ! -x "$TOOLS_BIN/pause" ]; then
  # The module is in the cache once build-k8s.sh has run.
  kk="$(cd "$CACHE/k8s-$K8S_VERSION/src" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)"
  gcc -Os -static -DVERSION="$K8S_VERSION" -o "$TOOLS_BIN/pause.tmp" "$kk/build/pause/linux/pause.c"
  strip "$TOOLS_BIN/pause.tmp"
  mv "$TOOLS_BIN/pause.tmp" "$TOOLS_BIN/pause"
  log "built pause"
fi
