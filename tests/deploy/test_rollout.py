"""docker/rollout.sh against a fake docker CLI that records calls (no Docker engine here)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.deploy.conftest import DOCKER

# The fake: `compose ... ps -q aeserve` lists two replicas; `restart` marks one as starting;
# `inspect` answers "starting" once after a restart, then $HEALTH (healthy by default).
FAKE_DOCKER = r"""#!/usr/bin/env bash
state=${FAKE_STATE:?}
echo "$*" >> "$state/calls"
case "$1" in
  compose) printf 'c1\nc2\n' ;;
  restart) touch "$state/starting-$2" ;;
  inspect)
    id=${@: -1}
    if [ -e "$state/starting-$id" ]; then rm "$state/starting-$id"; echo starting
    else echo "${HEALTH:-healthy}"; fi ;;
esac
"""


def run_rollout(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "docker"
    fake.write_text(FAKE_DOCKER)
    fake.chmod(0o755)
    environ = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", FAKE_STATE=str(tmp_path))
    # The docker path (with podman, the replicas are found and checked differently: below).
    environ.update(AESERVE_ENGINE="docker", AESERVE_ROLLOUT_POLL="0", **env)
    result = subprocess.run(
        ["bash", str(DOCKER / "rollout.sh"), "-p", "prod"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = (tmp_path / "calls").read_text().splitlines()
    return result, calls


def test_replicas_restart_one_at_a_time(tmp_path: Path) -> None:
    result, calls = run_rollout(tmp_path)
    assert result.returncode == 0, result.stderr
    inspect = "inspect -f {{.State.Health.Status}}"
    assert calls == [
        f"compose -f {DOCKER}/compose.yaml -p prod ps -q aeserve",
        "restart c1",
        f"{inspect} c1",  # starting
        f"{inspect} c1",  # healthy: only now the next one
        "restart c2",
        f"{inspect} c2",
        f"{inspect} c2",
    ]


def test_rollout_stops_at_a_replica_that_does_not_become_healthy(tmp_path: Path) -> None:
    result, calls = run_rollout(tmp_path, HEALTH="unhealthy", AESERVE_ROLLOUT_TIMEOUT="0")
    assert result.returncode == 1
    assert "c1 not healthy" in result.stderr
    assert "restart c2" not in calls


# The podman path: replicas by compose labels, each checked with `podman healthcheck run`
# (which fails once after a restart, then passes).
FAKE_PODMAN = r"""#!/usr/bin/env bash
state=${FAKE_STATE:?}
echo "$*" >> "$state/calls"
case "$1" in
  ps) printf 'c1\nc2\n' ;;
  restart) touch "$state/starting-${@: -1}" ;;
  healthcheck)
    id=${@: -1}
    if [ -e "$state/starting-$id" ]; then rm "$state/starting-$id"; exit 1; fi ;;
esac
"""


def test_podman_replicas_found_by_label_and_checked_by_the_script(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "podman"
    fake.write_text(FAKE_PODMAN)
    fake.chmod(0o755)
    environ = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", FAKE_STATE=str(tmp_path))
    environ.update(AESERVE_ENGINE="podman", AESERVE_ROLLOUT_POLL="0")
    result = subprocess.run(
        ["bash", str(DOCKER / "rollout.sh"), "-p", "prod"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    labels = "--filter label=com.docker.compose.project=prod"
    assert calls == [
        f"ps -q {labels} --filter label=com.docker.compose.service=aeserve --sort names",
        "restart -t 20 c1",
        "healthcheck run c1",  # fails: still starting
        "healthcheck run c1",
        "restart -t 20 c2",
        "healthcheck run c2",
        "healthcheck run c2",
    ]
