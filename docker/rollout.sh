#!/usr/bin/env bash
# Rolling restart of the aeserve replicas: one at a time, each waited for until its health check
# (/readyz: models loaded) passes before the next goes down, so nginx always has replicas to
# send traffic to. This is how a new model version in the models volume goes live.
#   bash docker/rollout.sh [compose options, e.g. -p NAME]
# Engine: docker when a daemon answers, else podman (scripts/engine.sh; AESERVE_ENGINE forces).
# With podman the replicas are found by their compose labels (project from -p/--project-name,
# else COMPOSE_PROJECT_NAME, else `aeserve`, the compose file's name), and the script runs each
# replica's health check itself (`podman healthcheck run`): podman schedules checks through
# systemd, which machines without systemd as PID 1 do not have.
# AESERVE_ROLLOUT_TIMEOUT: seconds to wait for one replica (120); the rollout stops there.
# AESERVE_ROLLOUT_GRACE: podman only, seconds a replica has to finish its requests before it is
# killed (20, compose's stop_grace_period; docker takes that from the container).
set -euo pipefail
last=""
here=$(cd "$(dirname "$0")" && pwd)
timeout=${AESERVE_ROLLOUT_TIMEOUT:-120}
poll=${AESERVE_ROLLOUT_POLL:-2}
grace=${AESERVE_ROLLOUT_GRACE:-20}
engine=${AESERVE_ENGINE:-$(bash "$here/../scripts/engine.sh")}

if [ "$engine" = podman ]; then
  project=${COMPOSE_PROJECT_NAME:-aeserve}
  args=("$@")
  for i in "${!args[@]}"; do
    case ${args[$i]} in
      -p|--project-name) project=${args[$((i + 1))]:-$project} ;;
      --project-name=*) project=${args[$i]#*=} ;;
    esac
  done
  mapfile -t ids < <(podman ps -q --filter "label=com.docker.compose.project=$project" \
                       --filter label=com.docker.compose.service=aeserve --sort names)
  restart() { podman restart -t "$grace" "$1"; }
  # The check's own words (e.g. "/readyz answered 503") are kept for the timeout message.
  healthy() { last=$(podman healthcheck run "$1" 2>&1); }
else
  mapfile -t ids < <(docker compose -f "$here/compose.yaml" "$@" ps -q aeserve)
  restart() { docker restart "$1"; }
  # A restarted container's health is "starting" until its check passes.
  healthy() {
    last=$(docker inspect -f '{{.State.Health.Status}}' "$1" 2>&1)
    [ "$last" = healthy ]
  }
fi

if [ "${#ids[@]}" -eq 0 ]; then
  echo "rollout: no aeserve replica is running" >&2
  exit 1
fi
[ "${#ids[@]}" -gt 1 ] || echo "rollout: warning: one replica only, it is down while it restarts" >&2

for id in "${ids[@]}"; do
  echo "rollout: restarting ${id:0:12}"
  restart "$id" >/dev/null
  start=$SECONDS
  until healthy "$id"; do
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
      echo "rollout: ${id:0:12} not healthy after ${timeout}s; stopped, later replicas untouched" >&2
      # Usually a model the new version refuses; the replica's log says which and why.
      echo "rollout: its last health check: ${last:-nothing}; see: $engine logs ${id:0:12}" >&2
      exit 1
    fi
    sleep "$poll"
  done
done
echo "rollout: ${#ids[@]} replicas restarted"
