"""The compose stack up for real (``make test-deploy``): docker/compose.yaml under podman-compose.

Collected only with ``AESERVE_TEST_STACK=1`` (the make target sets it): the stack needs podman,
root and the images ``make image`` and docker/local/build-base.sh build, and takes minutes. Where
it is collected nothing is skipped: a missing tool or image is a failure.

Only loopback is used from the host: nginx is published on 127.0.0.1 (port 18080 unless
``AESERVE_TEST_STACK_PORT`` says otherwise; single containers take the two ports above it), and
the compose project is ``aeservetest`` unless ``AESERVE_TEST_STACK_PROJECT`` names another, so
that two runs on one machine do not meet. Prometheus and single replicas are reached with
``podman exec`` inside their own containers. Every wait has a deadline, every load a bound, and
the stack is taken down whatever happens, its logs kept in build/test-deploy/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import DOCKER, ROOT

collect_ignore_glob = [] if os.environ.get("AESERVE_TEST_STACK") == "1" else ["test_*.py"]

PROJECT = os.environ.get("AESERVE_TEST_STACK_PROJECT", "aeservetest")
HTTP_PORT = int(os.environ.get("AESERVE_TEST_STACK_PORT", "18080"))
GRPC_PORT = HTTP_PORT + 3  # nginx's gRPC side, published on loopback
# The stack's API key: its hash goes into the compose secret `api_keys` (a keys file), so every
# inference request through nginx needs it, as a deployment with keys would.
API_KEY = "stack-test-key-1"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
REPLICAS = 3
OUT = ROOT / "build" / "test-deploy"
STACK_ENV = DOCKER / "local" / "stack.env"
RUNTIME_IMAGE = "localhost/aeserve:latest"
READY_TIMEOUT_S = 180.0


def run(*cmd: str, timeout: float = 120, env: dict[str, str] | None = None) -> str:
    """Runs a command and returns its stdout; any failure fails the test with its stderr."""
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"{' '.join(cmd)}: {result.returncode}\n{result.stderr[-3000:]}"
    return result.stdout


def podman(*args: str, timeout: float = 120) -> str:
    return run("podman", *args, timeout=timeout)


def inspect(container: str, template: str) -> str:
    return podman("inspect", "-f", template, container).strip()


def read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def wait_for(what: str, check: Any, timeout: float, poll: float = 1.0) -> Any:
    """Polls ``check()`` until it returns something truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout:.0f} s")
        time.sleep(poll)


def keys_file_line(key: str, scope: str = "infer") -> str:
    """A line of an API keys file (AESERVE_API_KEYS_FILE): the scope and the key's SHA-256."""
    return f"{scope} {hashlib.sha256(key.encode()).hexdigest()}\n"


@dataclass
class Stack:
    models: Path  # the host directory mounted at /models in every replica
    keys: Path  # the host file behind the compose secret `api_keys`
    env: dict[str, str]
    started: datetime
    results: dict[str, Any] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 300) -> str:
        exe = Path(sys.executable).with_name("podman-compose")
        assert exe.exists(), "podman-compose missing from .venv (the dev extra installs it)"
        cmd = [str(exe), "-p", PROJECT, "-f", str(DOCKER / "compose.yaml"), *args]
        return run(*cmd, timeout=timeout, env=self.env)

    def containers(self, service: str) -> list[str]:
        out = podman(
            "ps", "--format", "{{.Names}}", "--sort", "names",
            "--filter", f"label=com.docker.compose.project={PROJECT}",
            "--filter", f"label=com.docker.compose.service={service}",
        )  # fmt: skip
        return out.split()

    def replicas(self) -> list[str]:
        return self.containers("aeserve")

    def one(self, service: str) -> str:
        (name,) = self.containers(service)
        return name

    def address(self, container: str) -> str:
        return inspect(container, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")

    def healthy(self, container: str) -> bool:
        """The image's own HEALTHCHECK, run now (podman schedules it only through systemd)."""
        result = subprocess.run(
            ["podman", "healthcheck", "run", container], capture_output=True, timeout=30
        )
        return result.returncode == 0

    def nginx_log(self, since: datetime) -> list[dict[str, Any]]:
        """nginx's JSON access log lines since a moment."""
        result = subprocess.run(
            ["podman", "logs", "--since", since.isoformat(), self.one("nginx")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        lines = (result.stdout + result.stderr).splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def nginx_errors(self, since: datetime) -> list[str]:
        result = subprocess.run(
            ["podman", "logs", "--since", since.isoformat(), self.one("nginx")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        lines = (result.stdout + result.stderr).splitlines()
        return [line for line in lines if "[error]" in line or "[crit]" in line]

    def prometheus(self, query: str) -> list[dict[str, Any]]:
        """An instant query to Prometheus' HTTP API, from inside its container (not published)."""
        from urllib.parse import quote

        url = f"http://127.0.0.1:9090/api/v1/query?query={quote(query)}"
        out = podman("exec", self.one("prometheus"), "wget", "-qO-", url, timeout=30)
        answer = json.loads(out)
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def all_ready(self) -> bool:
        replicas = self.replicas()
        return len(replicas) == REPLICAS and all(self.healthy(r) for r in replicas)


@pytest.fixture(scope="session")
def results() -> Iterator[dict[str, Any]]:
    """Measured figures, written to build/test-deploy/results.json at the end."""
    figures: dict[str, Any] = {}
    yield figures
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, results: dict[str, Any]) -> Iterator[Stack]:
    assert shutil.which("podman"), "podman missing: `make test-deploy` installs it (as root)"
    local = read_env_file(STACK_ENV)
    for image in [RUNTIME_IMAGE, local["AESERVE_NGINX_IMAGE"], local["AESERVE_PROMETHEUS_IMAGE"]]:
        exists = subprocess.run(["podman", "image", "exists", image], timeout=30).returncode
        assert exists == 0, f"image {image} missing: run `make test-deploy` (it builds them)"

    # The shipped zoo, copied: the rollout test changes a model's version in it.
    models = tmp_path_factory.mktemp("stack") / "models"
    shutil.copytree(ROOT / "models", models)
    for path in [models, *models.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    models.parent.chmod(0o755)
    keys = models.parent / "api-keys.txt"
    keys.write_text(keys_file_line(API_KEY))
    keys.chmod(0o644)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AESERVE_", "COMPOSE_"))}
    env.update(local)
    env.update(
        AESERVE_HTTP_PORT=f"127.0.0.1:{HTTP_PORT}",
        AESERVE_LB_GRPC_PORT=f"127.0.0.1:{GRPC_PORT}",
        AESERVE_API_KEYS_SECRET=str(keys),
        AESERVE_REPLICAS=str(REPLICAS),
        AESERVE_MODELS=str(models),
        AESERVE_MODEL_DIR="/models",
        AESERVE_DEFAULT_MODEL="mnist",
        # The SIGTERM test's four 256-image requests queue behind each other (mnist batches on
        # the event loop) for longer than the 250 ms default on a busy machine, and two were
        # shed with 503 in one run: the overload policy at work, not what that test looks at.
        AESERVE_MAX_QUEUE_WAIT_MS="10000",
    )
    stack = Stack(models=models, keys=keys, env=env, started=datetime.now(UTC), results=results)
    stack.compose("down", "-v", "-t", "5")  # leftovers of an interrupted run
    start = time.monotonic()
    try:
        stack.compose("up", "-d", "--no-build", "aeserve", "nginx", "prometheus")
        wait_for("every replica healthy", stack.all_ready, READY_TIMEOUT_S)
        results["stack_ready_s"] = round(time.monotonic() - start, 1)
        yield stack
    finally:
        OUT.mkdir(parents=True, exist_ok=True)
        for name in (
            stack.containers("aeserve") + stack.containers("nginx") + stack.containers("prometheus")
        ):
            logs = subprocess.run(
                ["podman", "logs", name], capture_output=True, text=True, timeout=60
            )
            (OUT / f"{name}.log").write_text(logs.stdout + logs.stderr)
        stack.compose("down", "-v", "-t", "5")
