#!/usr/bin/env bash
# Makes the Debian bookworm base image the Dockerfiles build on, without a
# registry: debootstrap into a folder, then `docker import`. The packages
# come from the mirror this machine's apt already uses for the suite (its
# sources.list and sources.list.d, one-line and deb822 formats), or from
# DEBIAN_MIRROR. The tarball is cached under ~/.cache keyed by suite and
# date-free package set, so a second run only imports it.
# Prints the image name; `--print-mirror` prints the mirror it would use.
set -euo pipefail

suite="${DEBIAN_SUITE:-bookworm}"

# The first `deb` source of apt's configuration that serves $1 with the
# main component and a scheme debootstrap can fetch from.
apt_mirror() {
  local list=/etc/apt/sources.list parts=/etc/apt/sources.list.d/
  if command -v apt-config >/dev/null; then
    eval "$(apt-config shell list Dir::Etc::sourcelist/f parts Dir::Etc::sourceparts/d)"
  fi
  local files=()
  [ -f "$list" ] && files+=("$list")
  # In apt's order: sources.list, then the parts folder's files by name.
  for f in "$parts"*; do
    case "$f" in *.list | *.sources) [ -f "$f" ] && files+=("$f") ;; esac
  done
  [ ${#files[@]} -gt 0 ] || return 0
  awk -v suite="$1" '
    function has(list, word,   n, i, a) {
      n = split(list, a, /[ \t]+/)
      for (i = 1; i <= n; i++) if (a[i] == word) return 1
      return 0
    }
    function consider(types, uris, suites, components, enabled,   n, i, a) {
      if (found || tolower(enabled) == "no" || !has(types, "deb") || !has(suites, suite) || !has(components, "main")) return
      n = split(uris, a, /[ \t]+/)
      for (i = 1; i <= n; i++) if (a[i] ~ /^(https?|file):/) { sub(/\/+$/, "", a[i]); print a[i]; found = 1; return }
    }
    # deb822 (*.sources): paragraphs of "Field: value", continuation lines indented.
    function flush() {
      consider(f["types"], f["uris"], f["suites"], f["components"], f["enabled"])
      delete f; field = ""
    }
    FNR == 1 && deb822 { flush() }
    FNR == 1 { deb822 = FILENAME ~ /\.sources$/ }
    deb822 && /^[ \t]*#/ { next }
    deb822 && /^[ \t]*$/ { flush(); next }
    deb822 && /^[ \t]/ { if (field != "") f[field] = f[field] " " $0; next }
    deb822 {
      field = tolower($0); sub(/:.*/, "", field)
      value = $0; sub(/^[^:]*:[ \t]*/, "", value)
      f[field] = value; next
    }
    # One-line format (sources.list, *.list): deb [options] uri suite component...
    { sub(/#.*/, "") }
    $1 == "deb" {
      line = $0; sub(/^[ \t]*deb[ \t]+/, "", line)
      if (line ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "", line)
      n = split(line, w, /[ \t]+/)
      components = ""; for (i = 3; i <= n; i++) components = components " " w[i]
      consider("deb", w[1], w[2], components, "yes")
    }
    END { if (deb822) flush() }
  ' "${files[@]}"
}

# DEBIAN_MIRROR, else apt's mirror for the suite; only needed to debootstrap.
debian_mirror() {
  local mirror="${DEBIAN_MIRROR:-$(apt_mirror "$suite")}"
  if [ -z "$mirror" ]; then
    echo "no apt source of this machine serves Debian $suite main: set DEBIAN_MIRROR to a Debian mirror's URL" >&2
    return 1
  fi
  echo "$mirror"
}
if [ "${1:-}" = --print-mirror ]; then
  debian_mirror
  exit
fi
image="${BASE_IMAGE:-voicechat.local/debian:$suite}"
cache="${VOICECHAT_CACHE:-$HOME/.cache/voicechat}/images"
tarball="$cache/debian-$suite-minbase-slim.tar"
docker="${DOCKER:-docker}"

if "$docker" image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi
if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || {
    echo "debootstrap is missing (apt-get install debootstrap)" >&2
    exit 1
  }
  mirror="$(debian_mirror)"
  echo "==> debootstrap $suite (minbase) from $mirror" >&2
  started=$(date +%s)
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase "$suite" "$root" "$mirror" >&2
  # As debian:*-slim: no apt lists, caches, logs, docs, man pages or
  # translations (and dpkg told not to bring them back).
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
  mkdir -p "$cache"
  tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  echo "==> base rootfs made in $(($(date +%s) - started)) s" >&2
fi
"$docker" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  "$tarball" "$image" >&2
echo "$image"
