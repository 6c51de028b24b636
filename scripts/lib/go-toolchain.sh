# Sourced by the scripts that build Go programs from modules (the Kubernetes
# control plane, helm, Ollama). Puts a Go >= $GO_TOOLCHAIN_VERSION on PATH:
# the one already there when new enough, else a toolchain fetched from the
# Go module proxy (golang.org/toolchain), reachable wherever Go modules are.
# Module downloads and the build cache go under ~/.cache, so a CI runner
# that keeps ~/.cache rebuilds nothing.
# Needs: $cache (the voicechat cache folder) and a `log` function.

GO_TOOLCHAIN_VERSION="${GO_TOOLCHAIN_VERSION:-1.26.0}"

go_ok() {
  command -v go >/dev/null || return 1
  local v
  v="$(go env GOVERSION 2>/dev/null | sed 's/^go//')"
  [ "$(printf '%s\n%s\n' "$GO_TOOLCHAIN_VERSION" "$v" | sort -V | head -n1)" = "$GO_TOOLCHAIN_VERSION" ]
}

if ! go_ok; then
  goroot="$cache/go-$GO_TOOLCHAIN_VERSION"
  if [ ! -x "$goroot/bin/go" ]; then
    log "fetching Go $GO_TOOLCHAIN_VERSION from the Go module proxy"
    go_tmp="$(mktemp -d)"
    curl -fsSL --retry 3 -o "$go_tmp/go.zip" \
      "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go$GO_TOOLCHAIN_VERSION.linux-amd64.zip"
    (cd "$go_tmp" && unzip -q go.zip)
    rm -rf "$goroot"
    mkdir -p "$cache"
    mv "$go_tmp/golang.org/toolchain@v0.0.1-go$GO_TOOLCHAIN_VERSION.linux-amd64" "$goroot"
    rm -rf "$go_tmp"
  fi
  export PATH="$goroot/bin:$PATH"
fi
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$cache/go-mod}"
export GOCACHE="${GOCACHE:-$HOME/.cache/go-build}"
