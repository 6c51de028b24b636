#!/usr/bin/env bash
# Builds the OCI tools the models-from-images tests use, from their Go
# modules: the CNCF distribution registry (a real registry, run with
# htpasswd auth), and two clients nobody here wrote to push to it: oras
# (artifacts, one layer per file) and crane (images with filesystem
# layers). Cached under ~/.cache keyed by version; prints one line to eval:
#   eval "$(e2e/build-oci-tools.sh)"   # sets VOICECHAT_OCI_TOOLS (the folder)
set -euo pipefail

DISTRIBUTION_VERSION="${DISTRIBUTION_VERSION:-v3.0.0}"
ORAS_VERSION="${ORAS_VERSION:-v1.3.6}"
CRANE_VERSION="${CRANE_VERSION:-v0.22.1}"
cache="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}"
out="$cache/oci-tools-$DISTRIBUTION_VERSION-$ORAS_VERSION-$CRANE_VERSION/bin"

if [ -x "$out/registry" ] && [ -x "$out/oras" ] && [ -x "$out/crane" ]; then
  echo "export VOICECHAT_OCI_TOOLS='$out'"
  exit 0
fi
log() { echo "==> $*" >&2; }
# shellcheck source=../scripts/lib/go-toolchain.sh
source "$(dirname "$0")/../scripts/lib/go-toolchain.sh"
mkdir -p "$out"
build() {
  local name="$1" module="$2"
  [ -x "$out/$name" ] && return 0
  local t0
  t0=$(date +%s)
  CGO_ENABLED=0 GOBIN="$out" go install -trimpath -ldflags "-s -w" "$module" >&2
  log "built $name in $(($(date +%s) - t0)) s"
}
build registry "github.com/distribution/distribution/v3/cmd/registry@$DISTRIBUTION_VERSION"
build oras "oras.land/oras/cmd/oras@$ORAS_VERSION"
build crane "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
echo "export VOICECHAT_OCI_TOOLS='$out'"
