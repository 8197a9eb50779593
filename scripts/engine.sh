#!/usr/bin/env bash
# Prints the container engine the deployment scripts use: `docker` when a Docker daemon answers,
# else `podman` (set up by scripts/podman-setup.sh, installed when root). AESERVE_ENGINE=docker
# or =podman forces one. Exits non-zero, loudly, when neither can work.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
engine=${AESERVE_ENGINE:-}
if [ -z "$engine" ]; then
  if command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; then
    engine=docker
  else
    engine=podman
  fi
fi
case $engine in
  docker) ;;
  podman) bash "$here/podman-setup.sh" >&2 ;;
  *) echo "engine: AESERVE_ENGINE must be docker or podman, not '$engine'" >&2; exit 2 ;;
esac
echo "$engine"
