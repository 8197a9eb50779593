#!/usr/bin/env bash
# Container tooling for `make image` and `make test-deploy` on a Debian machine without a Docker
# engine: podman (+ buildah, runc), podman-compose, and mmdebstrap for the local base images.
# Root only, like scripts/sysdeps.sh; idempotent. Unlike sysdeps.sh it fails loudly: without
# these tools the deployment cannot be built or tested, and a silent skip would hide that.
set -euo pipefail

packages=(podman buildah runc mmdebstrap podman-compose uidmap slirp4netns fuse-overlayfs
          netavark aardvark-dns catatonit eatmydata)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "podman-setup: missing Debian packages ${missing[*]}; install them as root" >&2
    exit 1
  fi
  echo "podman-setup: installing ${missing[*]}"
  # Another install may hold the dpkg lock for a while: wait for it rather than fail.
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
fi

# Engine settings that make podman work on these machines (cgroups v1/hybrid, no systemd):
# - runc: crun fails here with "cgroups in hybrid mode not supported";
# - default ulimits: without them runc fails with "setrlimit RLIMIT_NOFILE: Operation not
#   permitted";
# - cgroupfs and a file event log when systemd is not PID 1 (there is no systemd to ask).
conf=/etc/containers/containers.conf
marker="# aeserve: scripts/podman-setup.sh"
if ! grep -qF "$marker" "$conf" 2>/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "podman-setup: $conf lacks the settings podman needs here; run this script as root" >&2
    exit 1
  fi
  if [ -s "$conf" ]; then
    cp "$conf" "$conf.aeserve-backup"
    echo "podman-setup: $conf existed; kept a copy in $conf.aeserve-backup, replacing it" >&2
  fi
  if [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; then
    manager=systemd logger=journald
  else
    manager=cgroupfs logger=file
  fi
  mkdir -p "$(dirname "$conf")"
  cat > "$conf" <<CONF
$marker
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "$manager"
events_logger = "$logger"
CONF
  echo "podman-setup: wrote $conf (runtime runc, default ulimits, cgroup manager $manager)"
fi

# Fail here, not in the middle of a build: podman must answer with the engine set up above.
runtime=$(podman info --format '{{.Host.OCIRuntime.Name}}') || {
  echo "podman-setup: podman does not work on this machine (podman info failed)" >&2
  exit 1
}
[ "$runtime" = runc ] || { echo "podman-setup: podman uses $runtime, not runc" >&2; exit 1; }
