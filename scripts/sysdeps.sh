#!/usr/bin/env bash
# Debian packages the test suite and data fetch need. Installed only when missing and when we are
# root (CI and the dev machines are); otherwise print what to install and go on.
set -euo pipefail
# tests/deploy: nginx (load balancer run for real), docker-compose (validates docker/compose.yaml;
# `config` needs no engine), prometheus (promtool checks the Prometheus config and rules).
# bench and tests/bench: wrk (the load generator of `make bench`).
# tests/web: chromium (the web app in a real browser, driven by Playwright through its path).
# training's `emoji` dataset: fonts-symbola (outline emoji glyphs, rendered with Pillow).
packages=(nginx dataset-fashion-mnist docker-compose prometheus wrk chromium fonts-symbola)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${missing[*]}"
  # Packages with daemons (nginx, prometheus) must not start them: tests run their own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "warning: missing Debian packages (install them as root): ${missing[*]}" >&2
fi
