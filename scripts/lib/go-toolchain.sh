# Sourced by the scripts that build Go programs from modules (the Kubernetes
# control plane, helm, Ollama, CoreDNS, crictl). Puts a Go >= $GO_TOOLCHAIN_VERSION
# on PATH: the one already there when new enough, else that release fetched
# by the go command itself, through the Go module proxy the machine is set
# up for (`go env GOPROXY`, GOSUMDB, ...), so that a mirror or private proxy
# configured there is what gets used:
# - a go >= 1.21 switches toolchains itself (GOTOOLCHAIN=go<version>);
# - an older one (Debian bookworm's golang-go is 1.19) downloads the same
#   toolchain module with `go mod download`;
# - with no go at all, Debian's golang-go is installed first (apt-get).
# Module downloads (the toolchain among them) and the build cache go under
# ~/.cache, so a CI runner that keeps ~/.cache rebuilds nothing.
# Needs: $cache (the voicechat cache folder) and a `log` function.
# Defines go_download_field, for the callers that read a module's files.

GO_TOOLCHAIN_VERSION="${GO_TOOLCHAIN_VERSION:-1.26.0}"
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$cache/go-mod}"
export GOCACHE="${GOCACHE:-$HOME/.cache/go-build}"
export GOFLAGS=-buildvcs=false

# Is the go on PATH at least version $1? GOTOOLCHAIN=local: the answer is
# about that binary, whatever a go.mod around the caller's folder asks for.
go_at_least() {
  local have
  have="$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null | sed 's/^go//')"
  [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$1" "$have" | sort -V | head -n1)" = "$1" ]
}

# go_download_field MODULE@VERSION FIELD: downloads the module into the
# module cache (`go mod download`) and prints one field of its -json
# answer: Dir (the unpacked module), GoMod (its go.mod file), Zip...
# Run from / so that no go.mod or go.work around the caller has a say.
go_download_field() {
  local json
  if ! json="$(cd / && go mod download -json "$1")"; then
    printf 'go mod download %s failed:\n%s\n' "$1" "$json" >&2
    return 1
  fi
  printf '%s\n' "$json" | sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}\$/\1/p"
}

# The GOROOT of Go $GO_TOOLCHAIN_VERSION, fetched into the module cache
# when it is not there yet.
go_toolchain_root() {
  local want="go$GO_TOOLCHAIN_VERSION" dir
  if go_at_least 1.21; then
    (cd / && GOTOOLCHAIN="$want" go env GOROOT)
    return
  fi
  dir="$(go_download_field "golang.org/toolchain@v0.0.1-$want.$(go env GOOS)-$(go env GOARCH)" Dir)"
  [ -n "$dir" ] || return 1
  # Module zips keep no file modes: set the execute bits as the go command
  # does on a downloaded toolchain's first use (tools before bin/go).
  find "$dir/pkg/tool" -type f -exec chmod +x {} +
  find "$dir/lib" -type f -name 'go_*_*_exec' -exec chmod +x {} + 2>/dev/null || true
  chmod +x "$dir"/bin/*
  echo "$dir"
}

if ! command -v go >/dev/null; then
  command -v apt-get >/dev/null || {
    echo "no go command: install any Go (1.21 or newer switches toolchains itself); Go $GO_TOOLCHAIN_VERSION is then fetched through the Go module proxy" >&2
    exit 1
  }
  log "no go command: installing Debian's golang-go, to fetch Go $GO_TOOLCHAIN_VERSION with"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends golang-go >/dev/null
fi
if ! go_at_least "$GO_TOOLCHAIN_VERSION"; then
  log "Go $GO_TOOLCHAIN_VERSION through $(GOTOOLCHAIN=local go env GOVERSION) and the Go module proxy ($(go env GOPROXY))"
  goroot="$(go_toolchain_root)" || true
  if [ -z "$goroot" ] || [ ! -x "$goroot/bin/go" ]; then
    echo "could not fetch Go $GO_TOOLCHAIN_VERSION (see above); install Go >= $GO_TOOLCHAIN_VERSION and run again" >&2
    exit 1
  fi
  export GOROOT="$goroot" PATH="$goroot/bin:$PATH"
fi
export GOTOOLCHAIN=local
