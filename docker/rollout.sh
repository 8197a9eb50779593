#!/usr/bin/env bash
# Rolling restart of the aeserve replicas: one at a time, each waited for until its health check
# (/readyz: models loaded) passes before the next goes down, so nginx always has replicas to
# send traffic to. This is how a new model version in the models volume goes live.
#   bash docker/rollout.sh [docker compose options, e.g. -p NAME]
# AESERVE_ROLLOUT_TIMEOUT: seconds to wait for one replica (120); the rollout stops there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
timeout=${AESERVE_ROLLOUT_TIMEOUT:-120}
poll=${AESERVE_ROLLOUT_POLL:-2}

mapfile -t ids < <(docker compose -f "$here/compose.yaml" "$@" ps -q aeserve)
if [ "${#ids[@]}" -eq 0 ]; then
  echo "rollout: no aeserve replica is running" >&2
  exit 1
fi
[ "${#ids[@]}" -gt 1 ] || echo "rollout: warning: one replica only, it is down while it restarts" >&2

for id in "${ids[@]}"; do
  echo "rollout: restarting ${id:0:12}"
  docker restart "$id" >/dev/null
  start=$SECONDS
  # A restarted container's health is "starting" until its check passes.
  until [ "$(docker inspect -f '{{.State.Health.Status}}' "$id")" = healthy ]; do
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
      echo "rollout: ${id:0:12} not healthy after ${timeout}s; stopped, later replicas untouched" >&2
      exit 1
    fi
    sleep "$poll"
  done
done
echo "rollout: ${#ids[@]} replicas restarted"
