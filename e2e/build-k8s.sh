#!/usr/bin/env bash
# Builds a real Kubernetes control plane from Go modules: kube-apiserver,
# kube-controller-manager, kubectl and etcd, pinned to one release, plus
# helm and the node's binaries (kubelet, kube-scheduler, kube-proxy, for
# e2e/cluster/up.sh); caches the binaries under ~/.cache keyed by version. Prints two
# lines for the caller to eval:
#   eval "$(e2e/build-k8s.sh)"   # sets KUBE_ASSETS (the folder) and HELM_BIN
#
# Why a wrapper module: k8s.io/kubernetes points its staging modules
# (k8s.io/api, k8s.io/client-go, ...) at ./staging with `replace`, so
# `go install k8s.io/kubernetes/cmd/kube-apiserver@v1.x` is refused. A module
# of our own that requires k8s.io/kubernetes and replaces every staging
# module with its published v0.y.z builds the same code. etcd's server module
# has a main package and is already in k8s.io/kubernetes' module graph at the
# version Kubernetes tests with, so it is built from the same wrapper.
#
# Needs Go >= the release's `go` directive; if `go` is missing or too old,
# scripts/lib/go-toolchain.sh has the go command fetch that release through
# the Go module proxy, which is reachable wherever Go modules are.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
HELM_VERSION="${HELM_VERSION:-v4.3.1}"
cache="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}"
out="$cache/k8s-$K8S_VERSION/bin"
helm_bin="$cache/helm-$HELM_VERSION/bin/helm"
binaries=(kube-apiserver kube-controller-manager kubectl etcd kube-scheduler kube-proxy kubelet)

have_all() {
  for b in "${binaries[@]}"; do [ -x "$out/$b" ] || return 1; done
  [ -x "$helm_bin" ]
}
print_env() {
  echo "export KUBE_ASSETS='$out'"
  echo "export HELM_BIN='$helm_bin'"
}

if have_all; then
  print_env
  exit 0
fi

log() { echo "==> $*" >&2; }
started=$(date +%s)

# shellcheck source=../scripts/lib/go-toolchain.sh
source "$(dirname "$0")/../scripts/lib/go-toolchain.sh"

# Helm has no replace directives: a plain `go install` of the tagged module.
if [ ! -x "$helm_bin" ]; then
  log "building helm $HELM_VERSION"
  t0=$(date +%s)
  GOBIN="$(dirname "$helm_bin")" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >&2
  log "built helm in $(($(date +%s) - t0)) s"
fi

src="$cache/k8s-$K8S_VERSION/src"
mkdir -p "$src" "$out"
staging_version="v0.${K8S_VERSION#v1.}"

log "preparing the wrapper module for k8s.io/kubernetes $K8S_VERSION"
# The go command fetches it through the machine's Go module proxy settings.
kube_gomod="$(go_download_field "k8s.io/kubernetes@$K8S_VERSION" GoMod)"
kube_mod="$(cat "$kube_gomod")"
go_directive="$(printf '%s\n' "$kube_mod" | awk '$1 == "go" {print $2; exit}')"
{
  echo "module voicechat.dev/k8s-build"
  echo
  echo "go $go_directive"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  # Every staging module that k8s.io/kubernetes requires at v0.0.0.
  printf '%s\n' "$kube_mod" | awk '/^replace \(/ {r=1; next} r && /^\)/ {r=0} r && /=>/ {print $1}' |
    while read -r m; do
      if printf '%s\n' "$kube_mod" | grep -qE "^[[:space:]]+$m v0\.0\.0"; then
        echo "	$m => $m $staging_version"
      fi
    done
  echo ")"
} >"$src/go.mod"
cat >"$src/tools.go" <<'EOF'
//go:build tools

// Keeps the commands' packages in the module graph for `go mod tidy`.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
EOF

minor="${K8S_VERSION#v1.}"
minor="${minor%%.*}"
version_flags=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  version_flags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

if have_all; then
  print_env
  exit 0
fi

cd "$src"
log "downloading modules (go mod tidy)"
go mod tidy >&2
for b in "${binaries[@]}"; do
  [ -x "$out/$b" ] && continue
  case "$b" in
    etcd) pkg=go.etcd.io/etcd/server/v3 ;;
    *) pkg="k8s.io/kubernetes/cmd/$b" ;;
  esac
  log "building $b"
  t0=$(date +%s)
  # -trimpath keeps the cache path out of the binaries; -s -w halves their
  # size; the -X flags give /version the release (Helm and kubectl read it).
  go build -trimpath -ldflags "-s -w $version_flags" -o "$out/$b.tmp" "$pkg" >&2
  mv "$out/$b.tmp" "$out/$b"
  log "built $b in $(($(date +%s) - t0)) s"
done
log "Kubernetes $K8S_VERSION control plane and helm $HELM_VERSION built in $(($(date +%s) - started)) s: $out"
print_env
