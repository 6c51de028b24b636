#!/usr/bin/env bash
# Makes the Debian bookworm base image the Dockerfiles build on, without a
# registry: debootstrap (from deb.debian.org, or DEBIAN_MIRROR) into a
# folder, then `docker import`. The tarball is cached under ~/.cache keyed
# by suite and date-free package set, so a second run only imports it.
# Prints the image name.
set -euo pipefail

suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
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
