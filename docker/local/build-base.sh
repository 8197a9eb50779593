#!/usr/bin/env bash
# Builds, without any registry, the images the Dockerfile and docker/compose.yaml would
# otherwise pull: a Debian bookworm root filesystem made by mmdebstrap from the mirror apt
# already uses, imported into podman, and from it Python, nginx and Prometheus images holding
# Debian's packages (docker/local/*.Containerfile).
#   bash docker/local/build-base.sh [debian|python|nginx|prometheus|all]   (default: all)
# An image that exists is kept; AESERVE_REBUILD_BASE=1 rebuilds. Root and podman required
# (scripts/podman-setup.sh). Names, as docker/compose.yaml and `make image` use them:
#   localhost/aeserve-local/debian:bookworm       mmdebstrap --variant=apt, about 75 MB
#   localhost/aeserve-local/python:3.11-bookworm  Debian's python3 (3.11), venv
#   localhost/aeserve-local/nginx:bookworm        Debian's nginx, unprivileged on 8080
#   localhost/aeserve-local/prometheus:bookworm   Debian's prometheus, as nobody
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=localhost/aeserve-local
suite=bookworm

exists() { [ -z "${AESERVE_REBUILD_BASE:-}" ] && podman image exists "$1"; }

# The Debian mirror apt uses here (first non-security URI in its sources), else deb.debian.org.
mirror_uri() {
  local uri
  uri=$(sed -nE -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//p' \
          /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
          2>/dev/null | tr ' ' '\n' | grep -E '^(https?|file)://.*/debian/?$' | head -n 1 || true)
  uri=${uri%/}
  echo "${uri:-http://deb.debian.org/debian}"
}

build_debian() {
  local image=$prefix/debian:$suite
  exists "$image" && { echo "base: $image exists"; return; }
  local uri sec tmp
  uri=$(mirror_uri)
  sec=${uri%/debian}/debian-security
  tmp=$(mktemp -d)
  trap 'rm -rf "${tmp:-}"; trap - RETURN' RETURN
  echo "base: mmdebstrap $suite from $uri"
  # --variant=apt: Essential packages plus apt, what official debian:*-slim images hold;
  # passwd for useradd; no recommended packages; no documentation, man pages or locales
  # (path-exclude, as the slim images do). Hooks: merged-usr sets up /usr as bookworm wants
  # without the usrmerge package (which brings perl, ~50 MB); eatmydata skips dpkg's fsyncs.
  mmdebstrap --quiet --variant=apt --include=ca-certificates,passwd \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --hook-dir=/usr/share/mmdebstrap/hooks/eatmydata \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    "$suite" "$tmp/rootfs.tar" \
    "deb $uri $suite main" "deb $uri $suite-updates main" "deb $sec $suite-security main"
  podman import --quiet --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' \
    "$tmp/rootfs.tar" "$image" >/dev/null
  echo "base: $image $(podman image inspect -f '{{.Size}}' "$image") bytes"
}

build_from() {  # name tag [files it copies]: docker/local/<name>.Containerfile FROM debian
  local image=$prefix/$1:$2 inputs
  # Rebuilt when its Containerfile or a file it copies changed (a label records their hash).
  inputs=$(cd "$here" && cat "$1.Containerfile" "${@:3}" | sha256sum | cut -c1-16)
  if exists "$image" && [ "$(podman image inspect -f '{{index .Labels "aeserve.inputs"}}' \
       "$image")" = "$inputs" ]; then
    echo "base: $image exists"
    return
  fi
  build_debian
  echo "base: building $image"
  podman build --quiet --pull=never --build-arg "DEBIAN_IMAGE=$prefix/debian:$suite" \
    --label "aeserve.inputs=$inputs" -f "$here/$1.Containerfile" -t "$image" "$here" >/dev/null
  echo "base: $image $(podman image inspect -f '{{.Size}}' "$image") bytes"
}

what=${1:-all}
case $what in
  debian) build_debian ;;
  python) build_from python 3.11-$suite ;;
  nginx) build_from nginx $suite nginx-run.sh ;;
  prometheus) build_from prometheus $suite ;;
  all) build_from python 3.11-$suite; build_from nginx $suite nginx-run.sh; build_from prometheus $suite ;;
  *) echo "usage: $0 [debian|python|nginx|prometheus|all]" >&2; exit 2 ;;
esac
