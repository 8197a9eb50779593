#!/usr/bin/env bash
# Builds an aeserve image from the repository root: `make image` (runtime), `make image-train`.
#   bash scripts/image.sh [runtime|train]
# Engine: docker when a daemon answers, else podman (scripts/engine.sh; installed when root).
# AESERVE_TAG          image tag (latest): aeserve:TAG, aeserve-train:TAG, as docker/compose.yaml
# AESERVE_PYTHON_IMAGE base image (the Dockerfile's PYTHON_IMAGE). Default with docker: the
#                      Dockerfile's own (python:3.11-slim-bookworm, pulled). Default with podman:
#                      Debian's Python built locally (docker/local/build-base.sh), because this
#                      project's machines reach no container registry.
# The host's CA bundle goes to the build as a secret (never into the image), so pip works behind
# a TLS-inspecting proxy as it does on the host.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-runtime}
case $target in
  runtime) name=aeserve ;;
  train) name=aeserve-train ;;
  *) echo "usage: $0 [runtime|train]" >&2; exit 2 ;;
esac
tag=${AESERVE_TAG:-latest}
engine=$(bash scripts/engine.sh)
args=(build --target "$target" -t "$name:$tag" -f Dockerfile)
base=${AESERVE_PYTHON_IMAGE:-}
if [ "$engine" = podman ]; then
  if [ -z "$base" ]; then
    bash docker/local/build-base.sh python
    base=localhost/aeserve-local/python:3.11-bookworm
  fi
  podman image exists "$base" && args+=(--pull=never)
  # docker format: the OCI format has no HEALTHCHECK, and podman would drop it.
  args+=(--layers --format docker)
else
  export DOCKER_BUILDKIT=1
fi
[ -n "$base" ] && args+=(--build-arg "PYTHON_IMAGE=$base")
# The train image's torch (CPU build): from the CPU wheel index, or where that is unreachable
# (this project's machines) from a local directory holding the wheel (AESERVE_TORCH_WHEELS, else
# pip's find-links), which podman mounts into the build; docker builds cannot mount one.
if [ "$target" = train ] && [ "$engine" = podman ]; then
  wheels=${AESERVE_TORCH_WHEELS:-${PIP_FIND_LINKS:-}}
  if [ -n "$wheels" ] && compgen -G "$wheels/torch-2.13.0+cpu-*.whl" >/dev/null; then
    args+=(--volume "$wheels:/wheels:ro" --build-arg TORCH_WHEELS=/wheels)
  fi
fi
for bundle in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
  [ -s "$bundle" ] && { args+=(--secret "id=ca-bundle,src=$bundle"); break; }
done
echo "image: $engine ${args[*]} ."
start=$SECONDS
"$engine" "${args[@]}" .
size=$("$engine" image inspect -f '{{.Size}}' "$name:$tag")
echo "image: $name:$tag built in $((SECONDS - start)) s, $((size / 1000000)) MB"
